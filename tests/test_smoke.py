from __future__ import annotations

from tests.conftest import Api


async def test_viewer(api: Api) -> None:
    data = await api.gql("{ viewer { name isAdmin } }")
    assert data == {"viewer": {"name": api.name, "isAdmin": False}}
