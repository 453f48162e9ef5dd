"""Exchange Online's IMAP personality: a TLS-terminating proxy in front of the stand-in's
Dovecot (greeting, capabilities, token-expiry BYEs, throttling, connection caps, faults).

Modules: `framing` (lines and literals), `sasl` (initial responses), `personality`
(Exchange's words), `faults` (switches), `stats` (counters), `tokens` (introspection),
`session` (one connection), `server` (ExchangeProxy), `control_api` (JSON endpoint).
"""

from standin.exchange.faults import Faults
from standin.exchange.server import ExchangeProxy
from standin.exchange.stats import ProxyStats

__all__ = ["ExchangeProxy", "Faults", "ProxyStats"]
