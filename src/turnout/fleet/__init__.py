"""A fleet of gateway replicas that decides as one: an elected leader takes every decision that
must be taken once, and publishes it for the others to follow."""

from turnout.fleet.leader import Elected, FleetMetrics, Leadership, Solo, leadership_for
from turnout.fleet.lease import Lease

__all__ = ["Elected", "FleetMetrics", "Leadership", "Lease", "Solo", "leadership_for"]
