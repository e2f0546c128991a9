"""``SubmitForm``: pick a site, set resources within its limits, see flavor prices and a cost estimate, submit."""

from __future__ import annotations

from typing import Any

import ipywidgets as widgets
from traitlets import Dict, Float, List, Unicode

from ..client import render
from ..client.api import Client, Job
from ..core.cost import estimate_cost_of_text
from .base import SwmWidget

DEFAULT_SCRIPT = "#!/bin/bash\n#SWM name hello\necho hello from $SWM_SITE\n"


def cost_estimate(price: float | None, nodes: int, walltime: str) -> float | None:
    """price per node-hour x nodes x walltime hours (the core's estimate); None when the price or walltime
    is unknown. The walltime is read as the server reads it (``1:00:00``, ``2-00:00:00``, ``90m``, ...)."""
    return estimate_cost_of_text(price, nodes, walltime)


class SubmitForm(SwmWidget):
    """A job form: site dropdown, resource fields bounded by the site's limits, flavors and cost, script or file.

    ``site``, ``flavor``, ``cost`` and ``last_job_id`` are traits; :meth:`submit` is what the button does.
    """

    site = Unicode("", help="The chosen site.")
    site_info = Dict(help="The chosen site's description (limits, flavors).")
    sites = List(help="Every site's description.")
    flavor = Unicode("", help="The chosen flavor id (cloud sites).")
    cost = Float(None, allow_none=True, help="Estimated cost: flavor price x nodes x walltime hours.")
    last_job_id = Unicode("", help="Id of the last job submitted from the form.")

    def __init__(self, client: Client | None = None, *, script: str = DEFAULT_SCRIPT, **kwargs: Any) -> None:
        """Build the form and load the sites (in the background)."""
        super().__init__(client=client, **kwargs)
        self.jobs: list[Job] = []
        self.site_box = widgets.Dropdown(description="site", options=[])
        self.name = widgets.Text(description="name", placeholder="from #SWM name or 'job'")
        self.nodes = widgets.BoundedIntText(value=1, min=1, max=1, description="nodes")
        self.cpus = widgets.BoundedIntText(value=1, min=1, max=1024, description="cpus")
        self.memory = widgets.Text(description="memory", placeholder="e.g. 4G")
        self.gpus = widgets.BoundedIntText(value=0, min=0, max=0, description="gpus")
        self.walltime = widgets.Text(description="walltime", placeholder="e.g. 1:00:00")
        self.limits_html = widgets.HTML()
        self.flavor_box = widgets.Dropdown(description="flavor", options=[])
        self.flavors_html = widgets.HTML()
        self.cost_html = widgets.HTML()
        self.mode = widgets.ToggleButtons(options=["script", "file"], value="script")
        self.script = widgets.Textarea(value=script, layout=widgets.Layout(width="100%", height="140px"))
        self.path = widgets.Text(description="file", placeholder="script.sh or notebook.ipynb (server folder)")
        self.source = widgets.VBox([self.script])
        self.submit_button = widgets.Button(description="Submit", button_style="primary", icon="paper-plane")
        self.submit_button.on_click(lambda _: self.submit())
        self.cloud_box = widgets.VBox([self.flavor_box, self.flavors_html, self.cost_html])
        self.children = [
            widgets.HBox([self.site_box, self.name]),
            self.limits_html,
            widgets.HBox([self.nodes, self.cpus, self.gpus]),
            widgets.HBox([self.memory, self.walltime]),
            self.cloud_box,
            self.mode,
            self.source,
            widgets.HBox([self.submit_button]),
            self.status_html,
        ]
        self.site_box.observe(lambda c: self._choose_site(c["new"]), "value")
        self.flavor_box.observe(lambda c: self._choose_flavor(c["new"]), "value")
        for box in (self.nodes, self.walltime):
            box.observe(lambda _c: self._update_cost(), "value")
        self.mode.observe(
            lambda c: setattr(self.source, "children", [self.script if c["new"] == "script" else self.path]), "value"
        )
        self.loaded = self.run_in_background(self._load_sites, what="listing sites")

    # sites and flavors ---------------------------------------------------------------------------
    def _load_sites(self) -> None:
        sites = self.client.sites()
        self.sites = list(sites)
        names = [s["name"] for s in sites]
        self.site_box.options = names
        if names:
            self.site_box.value = sites.default if sites.default in names else names[0]
            self._choose_site(self.site_box.value)

    def _choose_site(self, name: str | None) -> None:
        info = next((s for s in self.sites if s.get("name") == name), {})
        self.site = name or ""
        self.site_info = info
        limits = info.get("limits") or {}
        for box, key in ((self.nodes, "nodes"), (self.cpus, "cpus"), (self.gpus, "gpus")):
            limit = limits.get(key)
            box.max = int(limit) if limit else (0 if key == "gpus" else 1024)
            box.value = min(box.value, box.max)
        shown = ", ".join(f"{k} {v}" for k, v in limits.items() if v)
        self.limits_html.value = f"<span style='color:#555'>limits of {render.esc(name)}: {render.esc(shown)}</span>"
        flavors = info.get("flavors") or []
        self.flavor_box.options = [(f"{f.get('name')} ({f.get('price')}/h)", f.get("id")) for f in flavors]
        self.cloud_box.layout.display = "" if flavors else "none"
        if flavors and self.flavor_box.value is None:
            self.flavor_box.value = flavors[0].get("id")
        self._choose_flavor(self.flavor_box.value)

    def _choose_flavor(self, flavor_id: str | None) -> None:
        self.flavor = flavor_id or ""
        self.flavors_html.value = render.flavors_html(self.site_info.get("flavors") or [], self.flavor)
        self._update_cost()

    def _update_cost(self) -> None:
        flavor = next((f for f in self.site_info.get("flavors") or [] if f.get("id") == self.flavor), None)
        self.cost = cost_estimate(flavor.get("price") if flavor else None, self.nodes.value, self.walltime.value)
        self.cost_html.value = (
            f"<b>estimated cost: {self.cost:g}</b> (price x {self.nodes.value} node(s) x walltime)"
            if self.cost is not None
            else ("<i>set a walltime for a cost estimate</i>" if flavor else "")
        )

    # submitting -------------------------------------------------------------------------------------
    def request(self) -> dict[str, Any]:
        """The job request the form describes (what :meth:`submit` sends)."""
        body: dict[str, Any] = {"site": self.site or None, "name": self.name.value.strip() or None}
        res: dict[str, Any] = {"nodes": self.nodes.value, "cpus": self.cpus.value}
        if self.gpus.value:
            res["gpus"] = self.gpus.value
        if self.memory.value.strip():
            res["memory"] = self.memory.value.strip()
        if self.walltime.value.strip():
            res["walltime"] = self.walltime.value.strip()
        body["resources"] = res
        if self.flavor and self.site_info.get("flavors"):
            body["flavor"] = self.flavor
        if self.mode.value == "script":
            body["script"] = self.script.value
        else:
            path = self.path.value.strip()
            if path.endswith(".ipynb"):
                body["notebook"] = path
            else:
                body["command"] = ["/bin/bash", path]
                body["input_files"] = [path]
        return {k: v for k, v in body.items() if v is not None}

    def submit(self) -> Any:
        """Submit :meth:`request` in the background; ``last_job_id`` and ``status`` tell the outcome."""
        body = self.request()
        self.status = "submitting..."

        def done(job: Job) -> None:
            self.jobs.append(job)
            self.last_job_id = job.id
            self.status = f"submitted {job.id} ({job.name}) to {job.site}"

        return self.run_in_background(lambda: self.client.submit(body), done, what="submit")

    # reprs ----------------------------------------------------------------------------------------------
    def html(self) -> str:
        """The chosen site, its flavors and the estimate, as HTML."""
        cost = f"<p>estimated cost: {self.cost:g}</p>" if self.cost is not None else ""
        flavors = (
            render.flavors_html(self.site_info.get("flavors") or [], self.flavor)
            if self.site_info.get("flavors")
            else ""
        )
        return f"<div><b>swm submit form</b> — site {render.esc(self.site)}{flavors}{cost}</div>"

    def text(self) -> str:
        """The chosen site and estimate as text."""
        cost = f", estimated cost {self.cost:g}" if self.cost is not None else ""
        return f"SubmitForm(site={self.site!r}{cost})"
