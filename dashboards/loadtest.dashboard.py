"""Load test: what the Locust master exports while a run lasts (job `locust`, labelled run_id), set against the
service's own view of the same traffic: users and rates, client-side vs server-side latency, delivery latency
at the receiver, the checker's lost / duplicated / out-of-order counts, and whether the generator kept up."""

from dashboards.style import (
    RATE,
    Q,
    board,
    heatmap,
    instance_variable,
    job_variable,
    quantile,
    query_variable,
    row,
    runbook,
    stat,
    timeseries,
)

LG = 'job="$job",instance=~"$instance",run_id=~"$run_id"'
SUT = 'job="$service_job"'
COUNTS = ((None, "green"), (1, "red"))

panels = [
    stat("Users", "Locust users running (a chat pair counts once).", "short",
         [Q(f"sum(loadgen_users{{{LG}}})", "users")], w=4),
    stat("Sends acked", "Messages acknowledged per second (committed by the service).", "short",
         [Q(f"sum(rate(loadgen_messages_acked_total{{{LG}}}{RATE}))", "msg/s")], w=4),
    stat("Delivery p99", "99th percentile of end-to-end delivery, measured at the receiver.", "s",
         [Q(quantile(0.99, "loadgen_message_delivery_seconds", LG), "p99")],
         steps=((None, "green"), (0.1, "orange"), (1, "red")), w=4),
    stat("Lost", "Acknowledged messages the receiver never saw, live or by sync (the checker).", "none",
         [Q(f"sum(loadgen_messages_lost_total{{{LG}}})", "lost")], steps=COUNTS, graph=False, w=4),
    stat("Duplicated", "Sends stored twice (one client_message_id under two message ids).", "none",
         [Q(f"sum(loadgen_messages_duplicated_total{{{LG}}})", "duplicated")], steps=COUNTS, graph=False, w=4),
    stat("Out of order", "Live deliveries with a lower id than one already seen in the conversation.", "none",
         [Q(f"sum(loadgen_messages_out_of_order_total{{{LG}}})", "out of order")], steps=COUNTS, graph=False, w=4),
    row("Load"),
    timeseries("Users", "Locust users running, by run.", "short",
               [Q(f"sum by (run_id) (loadgen_users{{{LG}}})", "{{run_id}}")]),
    timeseries("Requests by name", "Requests per second by Locust name (REST names are `METHOD route`, as the "
               "service labels them; WS names are socket.io events).", "reqps",
               [Q(f"sum by (method, name) (rate(loadgen_requests_total{{{LG}}}{RATE}))", "{{method}} {{name}}")]),
    timeseries("Failures by name", "Failed requests per second by Locust name.", "reqps",
               [Q(f"sum by (method, name) (rate(loadgen_request_failures_total{{{LG}}}{RATE}))",
                  "{{method}} {{name}}")]),
    timeseries("Acked and delivered", "Messages acked at the sender and delivered at the receiver, per second: "
               "the two lines agree when delivery keeps up.", "short",
               [Q(f"sum(rate(loadgen_messages_acked_total{{{LG}}}{RATE}))", "acked"),
                Q(f"sum(rate(loadgen_messages_delivered_total{{{LG}}}{RATE}))", "delivered"),
                Q(f"sum(rate(loadgen_messages_redelivered_total{{{LG}}}{RATE}))", "redelivered")]),
    row("Client side vs server side"),
    timeseries("REST p99: client vs service", "99th percentile per REST route as Locust measured it (client) "
               "and as the service measured it (server); the gap is network, queueing and the client.", "s",
               [Q(quantile(0.99, "loadgen_request_duration_seconds", f'{LG},method!="WS"', "name"),
                  "client {{name}}"),
                Q(quantile(0.99, "http_request_duration_seconds", f'{SUT},route=~"/messaging/.*"', "method, route"),
                  "server {{method}} {{route}}")], w=24, log=True, min_value=None),
    timeseries("message:send p99: client ack vs service", "99th percentile of the ack as the sender saw it and "
               "of the service's handling until the ack.", "s",
               [Q(quantile(0.99, "loadgen_request_duration_seconds", f'{LG},method="WS",name="message:send"'),
                  "client ack"),
                Q(quantile(0.99, "socketio_event_duration_seconds", f'{SUT},event="message:send"'), "server")]),
    timeseries("Delivery latency", "End-to-end delivery at the receiver (send time to message:new), from the "
               "merged histograms of every worker.", "s",
               [Q(quantile(0.5, "loadgen_message_delivery_seconds", LG), "p50"),
                Q(quantile(0.99, "loadgen_message_delivery_seconds", LG), "p99"),
                Q(quantile(0.999, "loadgen_message_delivery_seconds", LG), "p99.9")], log=True, min_value=None),
    heatmap("Delivery latency distribution", "Deliveries per latency bucket per interval.", "s",
            Q(f"sum by (le) (increase(loadgen_message_delivery_seconds_bucket{{{LG}}}{RATE}))", "{{le}}")),
    timeseries("Checker counts", "Messages lost, duplicated and delivered out of order, cumulative per run.",
               "short", [Q(f"sum by (run_id) (loadgen_messages_lost_total{{{LG}}})", "lost {{run_id}}"),
                         Q(f"sum by (run_id) (loadgen_messages_duplicated_total{{{LG}}})", "duplicated {{run_id}}"),
                         Q(f"sum by (run_id) (loadgen_messages_out_of_order_total{{{LG}}})",
                           "out of order {{run_id}}")]),
    row("The generator"),
    timeseries("Schedule lag", "99th percentile of how late the open-model schedule sent: when it grows, the "
               "offered load is lower than the scenario asks.", "s",
               [Q(quantile(0.99, "loadgen_schedule_lag_seconds", LG), "p99")]),
    timeseries("Generator CPU vs service CPU", "CPU of each load-generator process and of the service's "
               "processes, in cores: the generator should spend less than the service.", "percentunit",
               [Q(f"loadgen_cpu_ratio{{{LG}}}", "generator {{worker}}"),
                Q(f"sum(rate(process_cpu_seconds_total{{{SUT}}}{RATE}))", "service (all instances)")]),
    timeseries("Sends late by more than 100 ms", "Share of scheduled sends that left more than 100 ms late.",
               "percentunit",
               [Q(f"(sum(rate(loadgen_schedule_lag_seconds_count{{{LG}}}{RATE})) - "
                  f'sum(rate(loadgen_schedule_lag_seconds_bucket{{{LG},le="0.1"}}{RATE}))) / '
                  f"sum(rate(loadgen_schedule_lag_seconds_count{{{LG}}}{RATE}))", "late")], w=24, h=6),
]

dashboard = board(
    title="Chat load test", uid="chat-loadtest",
    description="A load test as the generator and the service see it: rates, latencies on both sides, delivery, "
                "the checker's counts, and the generator's own health.",
    panels=panels,
    variables=[job_variable("locust", "loadgen_users"), instance_variable("loadgen_users"),
               query_variable("run_id", "Run", 'label_values(loadgen_users{job="$job"}, run_id)', default="All",
                              multi=True),
               query_variable("service_job", "Service job", "label_values(build_info, job)", default="sut")],
    links=[runbook("LoadTestMessagesLost"), runbook("LoadGeneratorBehind"), runbook("LoadGeneratorCPUSaturated"),
           runbook("DeliveryLatencyBudgetBurn")],
)
