"""HTTP RED by route: rate, errors and duration of every route template, client errors apart from server
errors, and the latency distribution."""

from dashboards.style import (
    API,
    RATE,
    SEL,
    Q,
    board,
    heatmap,
    instance_variable,
    job_variable,
    quantile,
    row,
    runbook,
    stat,
    table,
    timeseries,
)

REQS = f"http_requests_total{{{SEL}}}"
by_route = "sum by (method, route)"

panels = [
    stat("API requests", "Requests per second to the /messaging API (all instances selected).", "reqps",
         [Q(f"sum(rate(http_requests_total{{{API}}}{RATE}))", "req/s")]),
    stat("API 5xx ratio", "Share of /messaging requests answered with a 5xx.", "percentunit",
         [Q(f'sum(rate(http_requests_total{{{API},status=~"5.."}}{RATE})) / sum(rate(http_requests_total{{{API}}}'
            f"{RATE}))", "5xx")], steps=((None, "green"), (0.001, "orange"), (0.05, "red")), decimals=2),
    stat("API p99", "99th percentile of /messaging request duration, estimated from the histogram.", "s",
         [Q(quantile(0.99, "http_request_duration_seconds", API), "p99")],
         steps=((None, "green"), (0.25, "orange"), (1, "red"))),
    stat("Within 250 ms", "Share of /messaging requests answered within 250 ms: the latency SLI "
         "(an exact bucket edge).", "percentunit",
         [Q(f'sum(rate(http_request_duration_seconds_bucket{{{API},le="0.25"}}{RATE})) / '
            f"sum(rate(http_request_duration_seconds_count{{{API}}}{RATE}))", "SLI")],
         steps=((None, "red"), (0.99, "green")), decimals=2),
    row("Rate"),
    timeseries("Requests by route", "Requests per second by method and route template.", "reqps",
               [Q(f"{by_route} (rate({REQS}{RATE}))", "{{method}} {{route}}")], w=24),
    timeseries("Responses by status", "Responses per second by HTTP status code.", "reqps",
               [Q(f"sum by (status) (rate({REQS}{RATE}))", "{{status}}")], stack=True),
    timeseries("Requests by instance", "Requests per second each instance served: the balance across replicas.",
               "reqps", [Q(f"sum by (instance) (rate({REQS}{RATE}))", "{{instance}}")]),
    row("Errors"),
    timeseries("5xx ratio by route", "Share of each route's requests answered with a 5xx (server errors).",
               "percentunit", [Q(f'{by_route} (rate(http_requests_total{{{SEL},status=~"5.."}}{RATE})) / '
                                 f"{by_route} (rate({REQS}{RATE}))", "{{method}} {{route}}")]),
    timeseries("4xx by route", "Client errors per second by route and status: bad input, missing or expired "
               "tokens, rate limits (429).", "reqps",
               [Q(f'sum by (method, route, status) (rate(http_requests_total{{{SEL},status=~"4.."}}{RATE}))',
                  "{{status}} {{method}} {{route}}")]),
    row("Duration"),
    timeseries("p99 by route", "99th percentile of request duration per route, from the histogram's buckets.",
               "s", [Q(quantile(0.99, "http_request_duration_seconds", SEL, "method, route"),
                       "{{method}} {{route}}")], w=24, log=True, min_value=None),
    timeseries("p50 by route", "Median request duration per route.", "s",
               [Q(quantile(0.5, "http_request_duration_seconds", SEL, "method, route"), "{{method}} {{route}}")],
               log=True, min_value=None),
    heatmap("Request duration", "How many requests ended in each duration bucket per interval (all routes).",
            "s", Q(f"sum by (le) (increase(http_request_duration_seconds_bucket{{{SEL}}}{RATE}))", "{{le}}",)),
    table("Routes now", "Per route: requests per second, 5xx ratio and p99 over the last rate interval.", "short",
          [Q(f"{by_route} (rate({REQS}{RATE}))", "req/s"),
           Q(f'{by_route} (rate(http_requests_total{{{SEL},status=~"5.."}}{RATE})) / {by_route} (rate({REQS}{RATE}))',
             "5xx ratio"),
           Q(quantile(0.99, "http_request_duration_seconds", SEL, "method, route"), "p99 (s)")]),
]

dashboard = board(
    title="Chat service / HTTP", uid="chat-http",
    description="Rate, errors and duration of the chat service's HTTP routes (route templates; socket.io excluded).",
    panels=panels, variables=[job_variable("sut", "build_info"), instance_variable("build_info")],
    links=[runbook("HighErrorRate"), runbook("HTTPAvailabilityBudgetBurn"), runbook("HTTPLatencyBudgetBurn")],
)
