"""driftloop: the front door (the ``driftloop`` command) and the local services.

The loop itself lives in the four packages the design card fixes: ``streams``
(Kafka side), ``online_models`` (everything learned online), ``producers``
(everything that publishes) and ``retrain``. This package only wires them into
one command line and starts Kafka and Redis on a machine without Docker.
"""

__version__ = "0.1.0"
