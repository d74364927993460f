#!/bin/sh
# Regenerates the "please wait" slate the MCS sends a queued caller as
# early media. Run once; the output is committed, so nothing needs ffmpeg
# at run time.
#
#   please-wait.h264: 320x240, 5 fps, 10 frames (2 s, looped by the
#   sender), H.264 Constrained Baseline level 1.3, raw Annex B, one IDR
#   (SPS/PPS in band before it) then skipped P frames, one slice each.
set -eu
cd "$(dirname "$0")"
go run draw.go > slate.png
ffmpeg -hide_banner -loglevel error -y \
	-loop 1 -framerate 5 -i slate.png -frames:v 10 \
	-c:v libx264 -profile:v baseline -level 1.3 -pix_fmt yuv420p \
	-g 10 -keyint_min 10 -sc_threshold 0 -bf 0 -threads 1 -crf 30 \
	-x264-params repeat-headers=1:aud=0 \
	-bitexact -map_metadata -1 -f h264 please-wait.h264
rm slate.png
ls -l please-wait.h264
