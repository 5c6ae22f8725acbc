"""What routes and the start-up bootstrap share: dataset registration, job submission. Services raise the
domain errors of `app.services.errors`; they never know HTTP."""
