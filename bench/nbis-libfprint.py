#!/usr/bin/env python3
"""The peer for bench/fingerprint-real.ts: NBIS (mindtct + bozorth3) as Debian's libfprint runs it.

    FP_DEVICE_EMULATION=1 FP_VIRTUAL_IMAGE=/tmp/x/sock python3 bench/nbis-libfprint.py job.json

job.json: {"fingers": {"101": ["/tmp/x/101_1.frame", ...], ...}}, each frame file holding exactly what libfprint's
virtual_image device reads from its socket for one image: two native-endian int32 (width, height), then
width * height 8-bit grey bytes. Protocol (FVC-like, as in the issue): for each finger, enroll its first impression
(sent once per enroll stage), then verify the finger's other impressions (genuine attempts) and the first impression
of every other finger (impostor attempts). verify_sync decides at libfprint's bozorth3 threshold for image devices
(40). A verify that libfprint refuses (a retry: too few minutiae) counts as a rejected attempt.

Prints one JSON object: {"stages": N, "fingers": [{"finger", "enrolled", "genuine": [...], "impostor": [...]}]},
each attempt "match", "no_match" or "error". Run one process per set: libfprint's heat model refuses a device after
a few minutes of continuous use.
"""
import json
import os
import queue
import socket
import sys
import threading
import time

import gi

gi.require_version('FPrint', '2.0')
from gi.repository import FPrint, GLib, Gio  # noqa: E402


def main():
    job = json.load(open(sys.argv[1]))
    ctx = FPrint.Context()
    ctx.enumerate()
    dev = next((d for d in ctx.get_devices() if d.get_driver() == 'virtual_image'), None)
    if dev is None:
        sys.exit('libfprint shows no virtual_image device (are FP_DEVICE_EMULATION=1 and FP_VIRTUAL_IMAGE set?)')
    dev.open_sync()
    stages = dev.get_nr_enroll_stages()

    # The device listens on FP_VIRTUAL_IMAGE once opened; we are its one client.
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    for _ in range(200):
        try:
            conn.connect(os.environ['FP_VIRTUAL_IMAGE'])
            break
        except OSError:
            time.sleep(0.05)
    else:
        sys.exit('cannot connect to the virtual_image socket')

    # Sending may block on large images while libfprint reads on this (main) thread's loop: a sender thread.
    outbox = queue.Queue()

    def sender():
        while True:
            data = outbox.get()
            if data is None:
                return
            conn.sendall(data)

    threading.Thread(target=sender, daemon=True).start()

    frames = {}

    def frame(path):
        if path not in frames:
            with open(path, 'rb') as f:
                frames[path] = f.read()
        return frames[path]

    # The driver drops images that arrive while it is not capturing: send the current image once each time the
    # device starts asking for a finger.
    current = [None]
    needed = [False]

    def on_status(device, _pspec):
        now = bool(device.get_finger_status() & FPrint.FingerStatusFlags.NEEDED)
        if now and not needed[0] and current[0] is not None:
            outbox.put(frame(current[0]))
        needed[0] = now

    dev.connect('notify::finger-status', on_status)

    def enroll(path):
        retries = [0]
        cancel = Gio.Cancellable()

        def progress(_device, _completed, _print, _data, error):
            if error is not None:
                retries[0] += 1
                if retries[0] > 3:
                    cancel.cancel()

        current[0] = path
        try:
            return dev.enroll_sync(FPrint.Print.new(dev), cancel, progress, None)
        except GLib.Error:
            return None

    def verify(enrolled, path):
        current[0] = path
        try:
            match, _ = dev.verify_sync(enrolled)
            return 'match' if match else 'no_match'
        except GLib.Error:
            return 'error'

    fingers = job['fingers']
    ids = sorted(fingers, key=lambda s: (len(s), s))
    out = {'stages': stages, 'fingers': []}
    for fid in ids:
        imgs = fingers[fid]
        enrolled = enroll(imgs[0])
        rec = {'finger': fid, 'enrolled': enrolled is not None, 'genuine': [], 'impostor': []}
        if enrolled is not None:
            rec['genuine'] = [verify(enrolled, p) for p in imgs[1:]]
            rec['impostor'] = [verify(enrolled, fingers[o][0]) for o in ids if o != fid]
        out['fingers'].append(rec)
    current[0] = None
    outbox.put(None)
    dev.close_sync()
    print(json.dumps(out))


if __name__ == '__main__':
    main()
