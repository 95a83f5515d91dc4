"""The Python client of Ephemera: a library that speaks the protocol right (exactly once, in
order, across reconnects) and the `ephemera` command line built on it.

    async with Client(url, session=FileSession.for_profile("default")) as client:
        await client.send(conversation_id, "hello")
        async for event in client.events():
            ...
"""
