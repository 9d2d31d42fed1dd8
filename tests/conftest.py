import pytest


@pytest.fixture(scope="session")
def fused_kernel():
    """The fused CPU kernel, built once per session when the first test that needs it runs (not at collection,
    so a ``-k`` selection of other tests never waits for the build); skips where it cannot be built."""
    from embdrop.kernels import build

    if not build.available():
        pytest.skip(f"fused CPU kernel not built: {build._state.get('why')}")
    return build
