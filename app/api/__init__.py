"""The HTTP layer: `routes/` (one file per resource), `deps` (every dependency alias), `auth` and `access`
(keys, checked before a body is read), `limits` and `protocol` (sizes, paces and requests in flight),
`errors` (domain errors to statuses), `headers`, `uploads`. Services and serving never import it."""
