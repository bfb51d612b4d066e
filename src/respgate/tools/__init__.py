"""Tools the gateway runs itself. `mcp.py`: the MCP client (the only one)."""
