async def test_viewer(api):
    data = await api.gql("{ viewer { name isAdmin } }")
    assert data == {"viewer": {"name": api.name, "isAdmin": False}}
