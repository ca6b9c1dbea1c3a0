"""A camera that drops: an MJPEG-over-HTTP stream (multipart/x-mixed-replace, as IP cameras
serve one) on 127.0.0.1, for detect's stream tests (tests/tests/suite/video.rs).

    python mjpeg_server.py PORT_FILE FRAMES_DIR N

Serves the first N PNG frames of FRAMES_DIR (frame_000.png, ...) as JPEGs, 25 a second, to the
first client, then drops the connection; every later connection is refused with 503, as a
camera that went away. Writes the port it listens on to PORT_FILE, and exits after 60 s.
"""
import http.server
import sys
import threading
import time

import cv2

port_file, frames_dir, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
jpegs = [cv2.imencode(".jpg", cv2.imread(f"{frames_dir}/frame_{i:03d}.png"))[1].tobytes()
         for i in range(n)]
served = threading.Event()


class Camera(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        if served.is_set():
            self.send_error(503, "camera gone")
            return
        served.set()
        self.send_response(200)
        self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
        self.end_headers()
        try:
            for jpeg in jpegs:
                self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\n")
                self.wfile.write(f"Content-Length: {len(jpeg)}\r\n\r\n".encode())
                self.wfile.write(jpeg + b"\r\n")
                self.wfile.flush()
                time.sleep(0.04)
        except (BrokenPipeError, ConnectionResetError):
            pass
        self.close_connection = True


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Camera)
with open(port_file + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
import os  # noqa: E402

os.replace(port_file + ".tmp", port_file)
threading.Timer(60, server.shutdown).start()
server.serve_forever()
