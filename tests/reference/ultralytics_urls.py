"""The URL the installed `ultralytics` package downloads each named asset from, for the registry
check: one `URL NAME URL` line per name on the command line. Nothing is downloaded: the package's
download function is replaced by one that records the URL, and the lookup runs in an empty folder
with an empty settings folder, so no local copy short-cuts it."""
import os
import sys
import tempfile

work, settings = tempfile.TemporaryDirectory(), tempfile.TemporaryDirectory()
os.chdir(work.name)
os.environ["YOLO_CONFIG_DIR"] = settings.name
os.environ["YOLO_OFFLINE"] = "1"

from ultralytics.utils import downloads  # noqa: E402

asked = []
downloads.safe_download = lambda url, file=None, **kwargs: asked.append(url)
for name in sys.argv[1:]:
    asked.clear()
    downloads.attempt_download_asset(name)
    if len(asked) != 1:
        sys.exit(f"{name}: ultralytics asked for {asked}")
    print("URL", name, asked[0])
os.chdir("/")
