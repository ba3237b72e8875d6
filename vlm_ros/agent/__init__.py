"""The MCP server and its approval policy: how an LLM agent drives the node, safely."""
