"""What every component shares for being observed: metric helpers, build info, the access log.

Nothing here is on a component's decision path; the interceptor's hot path only ever calls the
plain-number :class:`~wakeway.observe.metrics.Histogram`.
"""
