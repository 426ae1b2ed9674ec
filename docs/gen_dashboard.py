"""Write docs/grafana-dashboard.json: a Grafana dashboard over offload_spawner's
metrics (offload_spawner/metrics.py) and JupyterHub's own (``jupyterhub_*``).

Run ``python docs/gen_dashboard.py`` after changing a metric; the test
tests/test_dashboard.py fails while the file is stale or names a metric the
hub does not define.
"""

from __future__ import annotations

import json
from pathlib import Path

OUT = Path(__file__).with_name("grafana-dashboard.json")
DS = {"type": "prometheus", "uid": "${datasource}"}
RANGE = "$__range"
RATE = "$__rate_interval"
SEL = 'target=~"$target"'
#: every target any offload_spawner metric names
LABELS = 'label_values({__name__=~"offload_spawner_.+"}, target)'


def _target(expr: str, legend: str, ref: str = "A") -> dict:
    return {"datasource": DS, "expr": expr, "legendFormat": legend, "refId": ref}


def panel(
    kind: str,
    title: str,
    targets: list[dict],
    x: int,
    y: int,
    w: int = 12,
    h: int = 8,
    unit: str = "short",
    description: str = "",
    stacked: bool = False,
) -> dict:
    p = {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DS,
        "gridPos": {"x": x, "y": y, "w": w, "h": h},
        "targets": [_target(e, legend, chr(ord("A") + i)) for i, (e, legend) in enumerate(targets)],
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {},
    }
    if kind == "timeseries":
        p["fieldConfig"]["defaults"]["custom"] = {
            "drawStyle": "line",
            "lineWidth": 1,
            "fillOpacity": 20 if stacked else 0,
            "stacking": {"mode": "normal" if stacked else "none", "group": "A"},
        }
        p["options"] = {
            "legend": {"displayMode": "table", "placement": "right", "calcs": ["lastNotNull"]},
            "tooltip": {"mode": "multi"},
        }
    if kind == "stat":
        p["options"] = {"reduceOptions": {"calcs": ["lastNotNull"]}, "colorMode": "value", "graphMode": "none"}
    if kind == "bargauge":
        p["options"] = {"reduceOptions": {"calcs": ["lastNotNull"]}, "orientation": "horizontal"}
        p["fieldConfig"]["defaults"].update({"min": 0, "max": 1})
    return p


def row(title: str, y: int) -> dict:
    return {
        "type": "row",
        "title": title,
        "collapsed": False,
        "gridPos": {"x": 0, "y": y, "w": 24, "h": 1},
        "panels": [],
    }


def dashboard() -> dict:
    panels = [
        row("Overview", 0),
        panel("stat", "Servers running (JupyterHub)", [("sum(jupyterhub_running_servers)", "running")], 0, 1, 6, 4),
        panel(
            "stat",
            "Spawns started (range)",
            [(f"sum(increase(offload_spawner_spawns_started_total{{{SEL}}}[{RANGE}]))", "started")],
            6,
            1,
            6,
            4,
        ),
        panel(
            "stat",
            "Spawns failed (range)",
            [
                (
                    f'sum(increase(offload_spawner_spawns_finished_total{{{SEL},outcome!="succeeded"}}[{RANGE}]))',
                    "failed",
                )
            ],
            12,
            1,
            6,
            4,
        ),
        panel(
            "stat",
            "Refusals (range)",
            [(f"sum(increase(offload_spawner_refusals_total[{RANGE}]))", "refused")],
            18,
            1,
            6,
            4,
        ),
        row("Spawns per target", 5),
        panel(
            "timeseries",
            "Spawns started per target",
            [
                (f"sum by (target) (increase(offload_spawner_spawns_started_total{{{SEL}}}[{RATE}]))", "{{target}}"),
            ],
            0,
            6,
            stacked=True,
        ),
        panel(
            "timeseries",
            "Spawns ended per target and outcome",
            [
                (
                    f"sum by (target, outcome) (increase(offload_spawner_spawns_finished_total{{{SEL}}}[{RATE}]))",
                    "{{target}} {{outcome}}",
                ),
            ],
            12,
            6,
            stacked=True,
            description="succeeded, remote_failure (the site refused or failed the job), timeout, refused, "
            "cancelled, failed",
        ),
        panel(
            "timeseries",
            "Time to running (p50 / p95) per target",
            [
                (
                    (
                        f"histogram_quantile(0.5, sum by (target, le) "
                        f"(rate(offload_spawner_spawn_duration_seconds_bucket{{{SEL}}}[{RATE}])))"
                    ),
                    "{{target}} p50",
                ),
                (
                    (
                        f"histogram_quantile(0.95, sum by (target, le) "
                        f"(rate(offload_spawner_spawn_duration_seconds_bucket{{{SEL}}}[{RATE}])))"
                    ),
                    "{{target}} p95",
                ),
            ],
            0,
            14,
            unit="s",
        ),
        panel(
            "timeseries",
            "Time queued at the site (p50 / p95) per target",
            [
                (
                    (
                        f"histogram_quantile(0.5, sum by (target, le) "
                        f"(rate(offload_spawner_queue_duration_seconds_bucket{{{SEL}}}[{RATE}])))"
                    ),
                    "{{target}} p50",
                ),
                (
                    (
                        f"histogram_quantile(0.95, sum by (target, le) "
                        f"(rate(offload_spawner_queue_duration_seconds_bucket{{{SEL}}}[{RATE}])))"
                    ),
                    "{{target}} p95",
                ),
            ],
            12,
            14,
            unit="s",
            description="From the pod's submission to the virtual node until the server ran.",
        ),
        panel(
            "timeseries",
            "Refusals per reason",
            [
                (f"sum by (reason) (increase(offload_spawner_refusals_total[{RATE}]))", "{{reason}}"),
            ],
            0,
            22,
            stacked=True,
        ),
        panel(
            "timeseries",
            '"Any available": chosen targets and failovers',
            [
                (f"sum by (target) (increase(offload_spawner_auto_choices_total[{RATE}]))", "chose {{target}}"),
                (
                    f"sum by (from_target, to_target) (increase(offload_spawner_failovers_total[{RATE}]))",
                    "{{from_target}} → {{to_target}}",
                ),
            ],
            12,
            22,
            stacked=True,
        ),
        row("Capacity and allocation (virtual-node targets)", 30),
        panel(
            "timeseries",
            "Accelerators allocated per target and model",
            [
                (
                    f'sum by (target, model) (offload_spawner_target_accelerators{{{SEL},state="allocated"}})',
                    "{{target}} {{model}} allocated",
                ),
                (
                    f'sum by (target, model) (offload_spawner_target_accelerators{{{SEL},state="capacity"}})',
                    "{{target}} {{model}} capacity",
                ),
            ],
            0,
            31,
        ),
        panel(
            "bargauge",
            "Accelerator allocation ratio",
            [
                (
                    (
                        f'sum by (target, model) (offload_spawner_target_accelerators{{{SEL},state="allocated"}}) / '
                        f'sum by (target, model) (offload_spawner_target_accelerators{{{SEL},state="capacity"}})'
                    ),
                    "{{target}} {{model}}",
                ),
            ],
            12,
            31,
            unit="percentunit",
        ),
        panel(
            "timeseries",
            "Free cores per target",
            [
                (f'offload_spawner_target_cores{{{SEL},state="free"}}', "{{target}} free"),
                (f'offload_spawner_target_cores{{{SEL},state="allocatable"}}', "{{target}} allocatable"),
            ],
            0,
            39,
        ),
        panel(
            "timeseries",
            "Free memory per target",
            [
                (f'offload_spawner_target_memory_bytes{{{SEL},state="free"}}', "{{target}} free"),
            ],
            12,
            39,
            unit="bytes",
        ),
        panel(
            "state-timeline",
            "Targets up (1) / down (0)",
            [
                (f"offload_spawner_target_up{{{SEL}}}", "{{target}}"),
                ("offload_spawner_availability_known", "availability known"),
            ],
            0,
            47,
            24,
            6,
        ),
        row("Tokens and JupyterHub", 53),
        panel(
            "timeseries",
            "Token refreshes per outcome",
            [
                (f"sum by (outcome) (increase(offload_spawner_token_refreshes_total[{RATE}]))", "{{outcome}}"),
            ],
            0,
            54,
            stacked=True,
        ),
        panel(
            "timeseries",
            "JupyterHub: spawn duration p95 per status",
            [
                (
                    (
                        f"histogram_quantile(0.95, sum by (status, le) "
                        f"(rate(jupyterhub_server_spawn_duration_seconds_bucket[{RATE}])))"
                    ),
                    "{{status}}",
                ),
            ],
            12,
            54,
            unit="s",
        ),
        panel(
            "timeseries",
            "JupyterHub: running servers and active users",
            [
                ("sum(jupyterhub_running_servers)", "running servers"),
                ('jupyterhub_active_users{period="24h"}', "active users (24h)"),
            ],
            0,
            62,
            24,
        ),
    ]
    for i, p in enumerate(panels, start=1):
        p["id"] = i
    return {
        "title": "JupyterHub offload_spawner",
        "uid": "offload-spawner",
        "description": "Spawns, queue times, refusals and capacity per offload target (offload_spawner), "
        "and JupyterHub's own metrics. Source: docs/gen_dashboard.py.",
        "tags": ["jupyterhub", "offload_spawner", "interlink"],
        "timezone": "utc",
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {
            "list": [
                {"name": "datasource", "label": "Prometheus", "type": "datasource", "query": "prometheus"},
                {
                    "name": "target",
                    "label": "Target",
                    "type": "query",
                    "datasource": DS,
                    "query": {"query": LABELS, "refId": "T"},
                    "definition": LABELS,
                    "includeAll": True,
                    "multi": True,
                    "allValue": ".*",
                    "current": {"text": "All", "value": "$__all"},
                    "refresh": 2,
                },
            ]
        },
        "annotations": {"list": []},
        "panels": panels,
    }


def render() -> str:
    return json.dumps(dashboard(), indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    OUT.write_text(render())
    print(f"wrote {OUT}")
