"""Pictures of what each mask drops (text now; matplotlib plots are imported lazily where they appear)."""
