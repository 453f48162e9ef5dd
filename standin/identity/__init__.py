"""A local stand-in for the Microsoft identity platform (Entra ID v2 endpoints).

Test tool only: state lives in memory, tokens are signed with a key made at start-up.
"""
