"""Live CPU and memory of the gateway's machine, from its `$sys.*` topics.

    LIVEGATE_URL=http://127.0.0.1:8080 streamlit run examples/python/streamlit_app.py

One livegate client (made once per server process with st.cache_resource)
keeps the last publications of `$sys.cpu` and `$sys.memory` in two windows,
up to date in the background; the fragment below re-reads them every
LIVEGATE_REFRESH seconds. Nothing polls the gateway over HTTP: a rerun only
reads what the client already received.

Environment: LIVEGATE_URL (default http://127.0.0.1:8080), LIVEGATE_WINDOW
(publications kept per topic, default 120), LIVEGATE_REFRESH (seconds between
redraws, default 1).
"""

from __future__ import annotations

import os
from typing import Dict, Tuple

import pandas as pd
import streamlit as st

import livegate

URL = os.environ.get("LIVEGATE_URL", "http://127.0.0.1:8080").rstrip("/")
WINDOW = int(os.environ.get("LIVEGATE_WINDOW", "120"))
REFRESH = float(os.environ.get("LIVEGATE_REFRESH", "1.0"))

CPU_TOPIC = "$sys.cpu"
MEMORY_TOPIC = "$sys.memory"
GIB = 1024**3


def _close(resource: Tuple[livegate.SyncClient, Dict[str, livegate.Window]]) -> None:
    client, windows = resource
    for w in windows.values():
        w.close()
    client.close()


def _cache_resource(**kwargs):
    try:  # on_release (Streamlit >= 1.50) closes the client when the cache drops it
        return st.cache_resource(on_release=_close, **kwargs)
    except TypeError:
        return st.cache_resource(**kwargs)


@_cache_resource(show_spinner=False)
def live_feed(url: str, size: int) -> Tuple[livegate.SyncClient, Dict[str, livegate.Window]]:
    """One client and its windows per Streamlit server process (shared by
    every browser session); it connects and reconnects by itself."""
    client = livegate.SyncClient(url)
    windows = {topic: client.window(topic, size=size) for topic in (CPU_TOPIC, MEMORY_TOPIC)}
    return client, windows


STATE_BADGES = {
    "disconnected": ("⚪", "not connected yet"),
    "connected": ("🟢", "connected"),
    "connecting": ("🟡", "connecting"),
    "reconnecting": ("🟠", "reconnecting"),
    "closed": ("🔴", "closed"),
}


def cpu_frame(pubs) -> pd.DataFrame:
    rows = []
    for p in pubs:
        row = {"total": float(p.data["usage_percent"])}
        for i, core in enumerate(p.data.get("cores") or []):
            row[f"core {i}"] = float(core)
        rows.append(row)
    index = pd.to_datetime([p.time_ms for p in pubs], unit="ms", utc=True)
    return pd.DataFrame(rows, index=index)


def memory_percent(data) -> float:
    total = data["total_bytes"]
    return 100.0 * data["used_bytes"] / total if total else 0.0


def memory_frame(pubs) -> pd.DataFrame:
    index = pd.to_datetime([p.time_ms for p in pubs], unit="ms", utc=True)
    return pd.DataFrame({"used %": [memory_percent(p.data) for p in pubs]}, index=index)


st.set_page_config(page_title="livegate: machine metrics", page_icon="📈", layout="wide")
st.title("Machine metrics, live")
st.caption(f"`{CPU_TOPIC}` and `{MEMORY_TOPIC}` from the gateway at {URL}, through livegate")

client, windows = live_feed(URL, WINDOW)


@st.fragment(run_every=REFRESH)
def dashboard() -> None:
    icon, label = STATE_BADGES.get(client.state, ("⚪", client.state))
    cpu_w, mem_w = windows[CPU_TOPIC], windows[MEMORY_TOPIC]
    received = cpu_w.received + mem_w.received
    gaps = cpu_w.gaps + mem_w.gaps
    status = f"{icon} Gateway **{label}** · {received} publications received"
    if gaps:
        status += f" · {gaps} reconnect(s) lost publications"
    st.markdown(status)
    for topic, w in windows.items():
        if w.failure:
            st.error(f"The gateway refused `{topic}`: {w.failure[0]}: {w.failure[1]}")

    cpu, mem = cpu_w.items(), mem_w.items()
    if not cpu or not mem:
        st.info("Waiting for the first `$sys` publications (is the gateway's system publisher on?)")
        return

    now_cpu, now_mem = cpu[-1].data, mem[-1].data
    prev_cpu = cpu[-2].data if len(cpu) > 1 else now_cpu
    prev_mem = mem[-2].data if len(mem) > 1 else now_mem
    mem_pct = memory_percent(now_mem)

    c1, c2, c3, c4 = st.columns(4)
    c1.metric("CPU", f"{now_cpu['usage_percent']:.1f} %",
              f"{now_cpu['usage_percent'] - prev_cpu['usage_percent']:+.1f}",
              delta_color="inverse")
    c2.metric("Memory", f"{mem_pct:.1f} %", f"{mem_pct - memory_percent(prev_mem):+.2f}",
              delta_color="inverse")
    c3.metric("Memory used", f"{now_mem['used_bytes'] / GIB:.2f} GiB",
              help=f"of {now_mem['total_bytes'] / GIB:.2f} GiB")
    load = now_cpu.get("load_avg") or [0.0]
    c4.metric("Load (1 min)", f"{load[0]:.2f}")

    left, right = st.columns(2)
    with left:
        st.subheader("CPU %")
        st.line_chart(cpu_frame(cpu), y_label="%")
    with right:
        st.subheader("Memory used %")
        st.line_chart(memory_frame(mem), y_label="%")
    st.caption(
        f"Last `{CPU_TOPIC}` offset {cpu[-1].offset} at {cpu[-1].time:%H:%M:%S} UTC · "
        f"last `{MEMORY_TOPIC}` offset {mem[-1].offset} · "
        f"window {len(cpu)}/{cpu_w.size} · redraw every {REFRESH:g} s"
    )


dashboard()
