"""Runtime: each service process's CPU, memory, file descriptors, garbage collection and event-loop lag, its
build, and the machine (node_exporter, job `node`)."""

from dashboards.style import (
    RATE,
    SEL,
    Q,
    board,
    instance_variable,
    job_variable,
    quantile,
    row,
    runbook,
    table,
    timeseries,
)

panels = [
    table("Instances", "Each instance's version and commit (build_info) and how long it has been up.", "s",
          [Q(f"max by (instance, version, commit) (build_info{{{SEL}}})", ""),
           Q(f"max by (instance) (time() - process_start_time_seconds{{{SEL}}})", "uptime")],
          h=5, hide=("Time", "Value #A")),
    row("Process"),
    timeseries("CPU", "CPU per process, in cores (1 = one core busy).", "percentunit",
               [Q(f"rate(process_cpu_seconds_total{{{SEL}}}{RATE})", "{{instance}}")]),
    timeseries("Resident memory", "Resident memory per process.", "bytes",
               [Q(f"process_resident_memory_bytes{{{SEL}}}", "{{instance}}")]),
    timeseries("Open file descriptors", "Open file descriptors per process (sockets included) against "
               "the limit.", "short",
               [Q(f"process_open_fds{{{SEL}}}", "{{instance}} open"),
                Q(f"process_max_fds{{{SEL}}}", "{{instance}} limit")], log=True, min_value=None),
    timeseries("Event loop lag p99", "99th percentile of how late a 0.5 s timer fires on each instance's event "
               "loop: CPU saturation or blocking calls.", "s",
               [Q(quantile(0.99, "event_loop_lag_seconds", SEL, "instance"), "{{instance}}")]),
    row("Garbage collection"),
    timeseries("GC collections", "Python garbage collections per second by generation.", "ops",
               [Q(f"sum by (instance, generation) (rate(python_gc_collections_total{{{SEL}}}{RATE}))",
                  "{{instance}} gen {{generation}}")]),
    timeseries("GC objects collected", "Objects the garbage collector freed per second, by generation.", "ops",
               [Q(f"sum by (instance, generation) (rate(python_gc_objects_collected_total{{{SEL}}}{RATE}))",
                  "{{instance}} gen {{generation}}")]),
    row("Machine (node_exporter)"),
    timeseries("Machine CPU by mode", "CPU seconds per second across the machine's cores, by mode.",
               "percentunit", [Q(f'sum by (mode) (rate(node_cpu_seconds_total{{job="node",mode!="idle"}}{RATE}))',
                                 "{{mode}}")], stack=True),
    timeseries("Machine memory available", "Memory the machine can still give to processes.", "bytes",
               [Q('node_memory_MemAvailable_bytes{job="node"}', "{{instance}}")]),
    timeseries("Load average", "1-minute load average (runnable processes).", "short",
               [Q('node_load1{job="node"}', "{{instance}}")], w=24, h=6),
]

dashboard = board(
    title="Chat service / Runtime", uid="chat-runtime",
    description="The chat service's processes (CPU, memory, GC, event loop) and the machine they run on.",
    panels=panels, variables=[job_variable("sut", "build_info"), instance_variable("build_info")],
    links=[runbook("EventLoopLagHigh"), runbook("ProcessMemoryHigh"), runbook("TargetDown")],
)
