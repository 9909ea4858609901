"""SLO overview: for each SLO of alerts/slos.py, the budget left over 30 days, the burn rates the alerts use
(with their tiers as lines), the error ratios, and what is firing now."""

from alerts.slos import SLOS, TIERS
from dashboards.style import (
    API,
    RATE,
    Q,
    board,
    instance_variable,
    job_variable,
    row,
    runbook,
    stat,
    table,
    timeseries,
)

BUDGET_STEPS = ((None, "red"), (0.0, "orange"), (0.25, "yellow"), (0.5, "green"))
BURN = "slo:sli_error:ratio_rate{w} / on (slo) slo:error_budget:ratio"

panels = [
    row("Error budgets (30 days)"),
    stat("Error budget remaining", "Share of each SLO's 30-day error budget not yet spent (traffic-weighted over "
         "the period, from the 5-minute rates). Below 0: the SLO is missed for the period.", "percentunit",
         [Q("slo:error_budget_remaining:ratio", "{{slo}}")], w=12, h=5, steps=BUDGET_STEPS, decimals=1),
    stat("SLI over 30 days", "Share of good events over the period, per SLO (1 - error ratio).", "percentunit",
         [Q("1 - slo:sli_error:ratio_rate30d", "{{slo}}")], w=12, h=5, decimals=3, graph=False),
    table("Objectives", "Each SLO's objective and error budget over 30 days, and the error ratio of the last "
          "hour and 30 days (the recording rules' slo label).", "percentunit",
          [Q("max by (slo) (slo:objective:ratio)", "objective"), Q("max by (slo) (slo:error_budget:ratio)", "budget"),
           Q("max by (slo) (slo:sli_error:ratio_rate1h)", "error ratio 1h"),
           Q("max by (slo) (slo:sli_error:ratio_rate30d)", "error ratio 30d")], w=24, h=7),
    row("Burn rates (what the alerts read)"),
    timeseries("Burn rate, 1 h window", "Error ratio over 1 hour divided by the error budget: 1 spends the budget "
               f"in exactly 30 days. The page tier fires above {TIERS[0].factor:g} when the 5-minute window agrees.",
               "x", [Q(BURN.format(w="1h"), "{{slo}}")], lines=((TIERS[0].factor, "red"),)),
    timeseries("Burn rate, 6 h window", "Error ratio over 6 hours divided by the error budget. The second page "
               f"tier fires above {TIERS[1].factor:g} when the 30-minute window agrees.", "x",
               [Q(BURN.format(w="6h"), "{{slo}}")], lines=((TIERS[1].factor, "orange"),)),
    timeseries("Burn rate, short windows", "The 5-minute and 30-minute burn rates: they confirm a long window and "
               "clear an alert within minutes of a recovery.", "x",
               [Q(BURN.format(w="5m"), "{{slo}} 5m"), Q(BURN.format(w="30m"), "{{slo}} 30m")]),
    timeseries("Burn rate, 3 d window", f"The ticket tier: above {TIERS[2].factor:g} over 3 days and 6 hours, "
               "the budget will not last the period.", "x",
               [Q(BURN.format(w="3d"), "{{slo}}")], lines=((TIERS[2].factor, "yellow"),)),
    row("Now"),
    timeseries("Error ratio, 5 minutes", "Bad events / all events per SLO over 5 minutes (log scale).",
               "percentunit", [Q("slo:sli_error:ratio_rate5m", "{{slo}}")], log=True, min_value=None),
    timeseries("API traffic", "Requests per second to the /messaging API, by instance: the SLIs' volume.",
               "reqps", [Q(f"sum by (instance) (rate(http_requests_total{{{API}}}{RATE}))", "{{instance}}")]),
    stat("Alerts firing", "Alerts Prometheus has firing now, of any severity (ALERTS series).", "none",
         [Q('count(ALERTS{alertstate="firing"}) or vector(0)', "firing")], w=6,
         steps=((None, "green"), (1, "red")), graph=False),
    stat("Pages firing", "Critical alerts firing now: the ones that page.", "none",
         [Q('count(ALERTS{alertstate="firing",severity="critical"}) or vector(0)', "critical")], w=6,
         steps=((None, "green"), (1, "red")), graph=False),
    table("Firing alerts", "Every alert firing now with its labels (empty when all is well).", "none",
          [Q('ALERTS{alertstate="firing"}', "")], w=12, h=4, hide=("Time", "__name__", "Value", "alertstate")),
]

dashboard = board(
    title="Chat service / SLO overview", uid="chat-slo-overview",
    description="Error budgets and burn rates of the chat service's SLOs (alerts/slos.py).",
    panels=panels, variables=[job_variable("sut", "build_info"), instance_variable("build_info")],
    links=[runbook(slo.alert) for slo in SLOS],
)
