"""socket.io: connections per instance, connects and disconnects by outcome, events and their ack latency,
message outcomes."""

from dashboards.style import (
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
    timeseries,
)

panels = [
    stat("Open connections", "socket.io connections open now, all selected instances.", "short",
         [Q(f"sum(websocket_connections_active{{{SEL}}})", "connections")]),
    stat("Messages stored", "Message sends stored per second (REST and socket.io).", "short",
         [Q(f'sum(rate(messages_total{{{SEL},status="sent"}}{RATE}))', "msg/s")]),
    stat("Send ack p99", "99th percentile of message:send handling, until the ack (after the commit).", "s",
         [Q(quantile(0.99, "socketio_event_duration_seconds", f'{SEL},event="message:send"'), "p99")],
         steps=((None, "green"), (0.25, "orange"), (1, "red"))),
    stat("Connects", "Connection attempts per second, accepted and refused (a bad or expired token, or an "
         "instance shutting down).", "cps",
         [Q(f"sum by (status) (rate(socketio_connects_total{{{SEL}}}{RATE}))", "{{status}}")]),
    row("Connections"),
    timeseries("Open connections by instance", "socket.io connections each instance holds: the balance "
               "across replicas.", "short", [Q(f"websocket_connections_active{{{SEL}}}", "{{instance}}")]),
    timeseries("Connects", "Connection attempts per second by outcome.", "cps",
               [Q(f"sum by (status) (rate(socketio_connects_total{{{SEL}}}{RATE}))", "{{status}}")]),
    timeseries("Disconnects by reason", "Disconnections per second: client (closed by the client), "
               "transport_error and ping_timeout (broken connections), server_shutdown (drain).", "cps",
               [Q(f"sum by (reason) (rate(socketio_disconnects_total{{{SEL}}}{RATE}))", "{{reason}}")],
               stack=True),
    timeseries("Abnormal disconnects by instance", "Transport errors and ping timeouts per second on each "
               "instance: connections that broke instead of closing (SocketIOAbnormalDisconnects).", "cps",
               [Q(f'sum by (instance) (rate(socketio_disconnects_total{{{SEL},reason=~"transport_error|ping_timeout"}}'
                  f"{RATE}))", "{{instance}}")]),
    row("Events"),
    timeseries("Events by outcome", "socket.io events handled per second, by event and ack status.", "ops",
               [Q(f"sum by (event, status) (rate(socketio_events_total{{{SEL}}}{RATE}))", "{{event}} {{status}}")]),
    timeseries("Ack latency p99 by event", "99th percentile of each event's handling time, until the ack.", "s",
               [Q(quantile(0.99, "socketio_event_duration_seconds", SEL, "event"), "{{event}} p99"),
                Q(quantile(0.5, "socketio_event_duration_seconds", SEL, "event"), "{{event}} p50")],
               log=True, min_value=None),
    heatmap("message:send ack latency", "Distribution of message:send handling time per interval.", "s",
            Q(f'sum by (le) (increase(socketio_event_duration_seconds_bucket{{{SEL},event="message:send"}}{RATE}))',
              "{{le}}")),
    timeseries("Message outcomes", "Message sends per second by outcome: sent, duplicate (a replayed "
               "client_message_id), rejected (the caller's input), failed (a dependency).", "short",
               [Q(f"sum by (type, status) (rate(messages_total{{{SEL}}}{RATE}))", "{{type}} {{status}}")]),
    timeseries("Conversations created", "New conversations per second.", "short",
               [Q(f"sum(rate(conversations_total{{{SEL}}}{RATE}))", "created")], w=24, h=6),
]

dashboard = board(
    title="Chat service / socket.io", uid="chat-socketio",
    description="The chat service's real-time side: connections, connects and disconnects, events, message outcomes.",
    panels=panels, variables=[job_variable("sut", "build_info"), instance_variable("build_info")],
    links=[runbook("WebSocketConnectionsLow"), runbook("SocketIOAbnormalDisconnects"),
           runbook("SocketIOConnectBudgetBurn"), runbook("MessageSendBudgetBurn")],
)
