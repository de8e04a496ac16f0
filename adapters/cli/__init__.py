"""The ``fleetlog`` command line (entry point: ``adapters.cli.main:main``)."""
