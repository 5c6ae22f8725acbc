"""The web page at `/`, its static assets, the bundled sample X-rays and the offline docs UI at `/docs`."""
