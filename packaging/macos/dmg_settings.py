# dmgbuild settings (https://dmgbuild.readthedocs.io): `packaging/build macos` runs
#   python -m dmgbuild -s packaging/macos/dmg_settings.py -D app="dist/PEFT Notify.app" "PEFT Notify" OUT.dmg
# dmgbuild executes this file with `defines` (the -D values) in scope.
# ruff: noqa: F821
import os.path

application = defines.get("app", "dist/PEFT Notify.app")
appname = os.path.basename(application)

format = "UDZO"  # zlib-compressed, read-only
size = None  # computed from the contents
files = [application]
symlinks = {"Applications": "/Applications"}  # drag the app onto it
icon_locations = {appname: (140, 120), "Applications": (500, 120)}
background = "builtin-arrow"
show_status_bar = False
show_tab_view = False
show_toolbar = False
show_pathbar = False
show_sidebar = False
window_rect = ((100, 100), (640, 300))
default_view = "icon-view"
icon_size = 128
