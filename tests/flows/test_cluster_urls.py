"""What the Ray workers are told about the Prefect API, and how task placement is counted."""

from types import SimpleNamespace

from flows.cluster import workers_api_url
from flows.config import RuntimeConfig
from flows.placement import task_nodes


def test_a_server_on_every_interface_is_handed_to_workers_by_this_machines_address():
    wildcard = RuntimeConfig(prefect_host="0.0.0.0", prefect_port=4300)
    # 127.0.0.2 routes over loopback, so "this machine's address towards the head" is 127.0.0.1 here;
    # what matters is that the port and path survive and a local run is left alone.
    handed = workers_api_url("http://127.0.0.1:4300/api", wildcard, "127.0.0.2:6379")
    assert handed.endswith(":4300/api") and handed.startswith("http://127.")
    # No cluster joined: the local workers reach loopback.
    assert workers_api_url("http://127.0.0.1:4300/api", wildcard, None) == "http://127.0.0.1:4300/api"
    # A server bound to one address, or one the user named, is handed on as it is.
    bound = RuntimeConfig(prefect_host="10.1.2.3")
    assert workers_api_url("http://10.1.2.3:4200/api", bound, "10.1.2.3:6379") == "http://10.1.2.3:4200/api"
    named = RuntimeConfig(prefect_host="0.0.0.0", prefect_api_url="http://127.0.0.1:4200/api")
    assert workers_api_url("http://127.0.0.1:4200/api", named, "10.9.9.9:6379") == "http://127.0.0.1:4200/api"


def test_task_placement_counts_each_task_once_under_its_node():
    a, b = {"address": "10.0.0.1", "hostname": "h1"}, {"address": "10.0.0.2", "hostname": "h2"}
    placed = task_nodes({"filter": [{"node": a}, {"node": b}, {"node": a}], "finalize": [{"node": b}, {}]})
    assert placed["tasks_by_node"] == {"10.0.0.1 (h1)": 2, "10.0.0.2 (h2)": 2, "unknown": 1}
    assert [t["task"] for t in placed["tasks"]] == ["filter-0", "filter-1", "filter-2", "finalize-0", "finalize-1"]
    assert placed["tasks"][1]["node"] == "10.0.0.2 (h2)"


def test_a_local_ray_is_started_even_beside_a_ray_start_cluster(monkeypatch):
    """With no address, connect_ray asks Ray for a new local instance ("local"): plain None
    would join whatever cluster a `ray start` on this machine left behind."""
    import ray

    from flows.cluster import connect_ray

    calls = []

    context = SimpleNamespace(address_info={"address": "127.0.0.1:1"})
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", lambda **kw: calls.append(kw) or context)
    assert connect_ray(RuntimeConfig(ray_num_cpus=1), None) is True
    assert calls[-1]["address"] == "local" and calls[-1]["num_cpus"] == 1
    assert connect_ray(RuntimeConfig(ray_address="10.0.0.1:6379"), None) is False
    assert calls[-1]["address"] == "10.0.0.1:6379" and "num_cpus" not in calls[-1]
