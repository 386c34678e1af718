"""The ground every stage stands on: settings, the broker connection and its compatibility layer,
logging, tracing and the dead-letter tools. It imports only `schemas/`; the stages (`ingress/`,
`streams/`, `connectors/`) import it, and the command line (`paystream/cli.py`, `commands/`, `dev/`)
sits on top of all of them (docs/architecture.md, "Layering")."""
