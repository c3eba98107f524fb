"""Voilà server classes that close the dashboard server's known holes (issue 12, items 6 and 7).

Loaded by the Voilà process through its configuration (see
:meth:`gmoswidgets.dashboard.server.DashboardServer.command`):

* :class:`V1OnlyConnection` refuses kernel websockets that do not ask for the
  ``v1.kernel.websocket.jupyter.org`` protocol.  With the legacy protocol,
  Voilà 0.5.13's ``VoilaKernelWebsocketHandler.write_message`` parses every
  binary kernel message (e.g. the widget state answering ``request_states``)
  with ``read_header_from_binary_message``, which assumes the v1 layout: the
  first 8 bytes of a legacy message (a big-endian count and first offset),
  read as a little-endian integer, are a number of offsets near 10**17, and
  the list comprehension building them grows by tens of MB per second until
  the process is killed.  Every browser front end (JupyterLab, Voilà's own
  page) asks for v1, so refusing the legacy protocol loses nothing.
* :class:`BoundedKernelManager` refuses to start more than
  :attr:`~BoundedKernelManager.max_kernels` kernels (every ``GET`` of the
  dashboard page starts one); idle kernels without a connection are culled
  by the usual ``cull_idle_timeout``, except a new kernel whose page has not
  connected yet: it is kept for :attr:`~BoundedKernelManager.first_connection_timeout`.
  Voilà runs the notebook before the page loads its scripts; the page then
  asks for its kernel (``GET /api/kernels/ID``) and, if that kernel is gone,
  shows the notebook's text without a single widget and without an error.
  On a busy machine the scripts can take longer than ``cull_idle_timeout``
  (seen once in the browser tests, with 30 s).
"""
from __future__ import annotations

import time

from jupyter_server.services.kernels.connection.channels import ZMQChannelsWebsocketConnection
from jupyter_server.services.kernels.kernelmanager import AsyncMappingKernelManager
from tornado import web
from traitlets import Int

__all__ = ["V1_PROTOCOL", "V1OnlyConnection", "BoundedKernelManager"]

#: The kernel websocket protocol every current Jupyter front end asks for.
V1_PROTOCOL = "v1.kernel.websocket.jupyter.org"


class V1OnlyConnection(ZMQChannelsWebsocketConnection):
    """A kernel websocket connection that accepts the v1 protocol only (HTTP 400 otherwise)."""

    async def prepare(self):
        """Refuse the connection before the upgrade unless the client asks for v1."""
        offered = self.websocket_handler.request.headers.get("Sec-WebSocket-Protocol", "")
        if V1_PROTOCOL not in (p.strip() for p in offered.split(",")):
            self.log.warning("Refusing a kernel websocket without the %s protocol", V1_PROTOCOL)
            raise web.HTTPError(400, f"this server speaks the {V1_PROTOCOL} protocol only")
        await super().prepare()


class BoundedKernelManager(AsyncMappingKernelManager):
    """A kernel manager that runs at most :attr:`max_kernels` kernels at once."""

    max_kernels = Int(8, config=True,
                      help="Most kernels running at once; a page asking for one more gets HTTP 503.")
    first_connection_timeout = Int(
        300, config=True,
        help="Seconds a new kernel is kept, idle or not, until its page first connects to it.")

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._unconnected: dict[str, float] = {}    # kernel id -> monotonic start time

    async def start_kernel(self, *args, **kwargs):
        """Start a kernel unless :attr:`max_kernels` are running already."""
        running = len(self.list_kernel_ids())
        if running >= self.max_kernels:
            self.log.warning("Refusing to start kernel %d (max_kernels=%d)", running + 1,
                             self.max_kernels)
            raise web.HTTPError(503, f"{running} dashboards are open already; close one, or wait "
                                     "for idle ones to be closed, and reload")
        kernel_id = await super().start_kernel(*args, **kwargs)
        self._unconnected[kernel_id] = time.monotonic()
        return kernel_id

    def notify_connect(self, kernel_id):
        """A websocket connected to the kernel: from now on it is culled as usual."""
        self._unconnected.pop(kernel_id, None)
        super().notify_connect(kernel_id)

    def remove_kernel(self, kernel_id):
        """Forget a kernel that was shut down."""
        self._unconnected.pop(kernel_id, None)
        return super().remove_kernel(kernel_id)

    async def cull_kernel_if_idle(self, kernel_id):
        """Cull as usual, but not a kernel waiting for its page's first connection."""
        started = self._unconnected.get(kernel_id)
        waiting = started is not None and time.monotonic() - started < self.first_connection_timeout
        if waiting and getattr(self._kernels.get(kernel_id), "execution_state", None) != "dead":
            return
        await super().cull_kernel_if_idle(kernel_id)
