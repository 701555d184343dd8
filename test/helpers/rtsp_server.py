#!/usr/bin/env python3
"""A live RTSP camera for tests: gst-rtsp-server (Debian gir1.2-gst-rtsp-server-1.0, python3-gi,
gstreamer1.0-plugins-bad for openh264enc) serving a moving test pattern as H.264 at
rtsp://127.0.0.1:<port>/cam. Prints `ready` once it listens. test/helpers/flaps.ts starts and kills it.

    /usr/bin/python3 test/helpers/rtsp_server.py <port> [width height fps]
"""
import sys

import gi

gi.require_version('Gst', '1.0')
gi.require_version('GstRtspServer', '1.0')
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

Gst.init(None)
port = sys.argv[1]
w, h, fps = (sys.argv[2:5] + ['64', '64', '30'][len(sys.argv[2:5]):])
server = GstRtspServer.RTSPServer()
server.set_address('127.0.0.1')
server.set_service(port)
factory = GstRtspServer.RTSPMediaFactory()
# A keyframe every 10 frames, so a client that (re)connects decodes within a third of a second.
factory.set_launch(
    f'( videotestsrc is-live=true pattern=ball ! video/x-raw,width={w},height={h},framerate={fps}/1 '
    f'! videoconvert ! openh264enc gop-size=10 ! h264parse ! rtph264pay name=pay0 pt=96 config-interval=1 )'
)
factory.set_shared(True)
server.get_mount_points().add_factory('/cam', factory)
if server.attach(None) == 0:
    sys.exit(f'cannot listen on 127.0.0.1:{port}')
print('ready', flush=True)
GLib.MainLoop().run()
