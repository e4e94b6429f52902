"""A real RTSP camera on 127.0.0.1 for the stall tests: GStreamer's RTSP server (Debian:
gstreamer1.0-rtsp, gir1.2-gst-rtsp-server-1.0, python3-gi, gstreamer1.0-plugins-good) serving a
looping test pattern as motion JPEG over RTP, as IP cameras do. Run with Debian's own Python
(python3-gi is not in a virtual environment):

    /usr/bin/python3 tests/rtsp_server.py PORT      # rtsp://127.0.0.1:PORT/gate until killed
"""
from __future__ import annotations

import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

PIPELINE = ("( videotestsrc is-live=true pattern=ball ! video/x-raw,format=I420,width=320,height=240,"
            "framerate=10/1 "
            "! jpegenc quality=80 ! rtpjpegpay name=pay0 pt=26 )")


def main() -> int:
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(sys.argv[1])
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(PIPELINE)
    factory.set_shared(True)
    server.get_mount_points().add_factory("/gate", factory)
    if server.attach(None) == 0:
        print(f"rtsp_server: cannot listen on 127.0.0.1:{sys.argv[1]}", file=sys.stderr)
        return 1
    print("ready", flush=True)
    GLib.MainLoop().run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
