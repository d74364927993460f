#!/bin/sh
# Regenerates the media test clip. Run once; the outputs are committed so tests
# and the client's --send default never need ffmpeg at run time.
#
#   clip.h264: 640x480, 30 fps, 90 frames (3 s), H.264 Constrained Baseline
#              level 3.0, raw Annex B, IDR every 30 frames, SPS/PPS repeated
#              in band before each IDR, no B-frames, one slice per picture.
#   clip.wav:  3 s of a 440 Hz tone, 8 kHz mono G.711 mu-law (WAVE_FORMAT_MULAW).
set -eu
cd "$(dirname "$0")"

ffmpeg -hide_banner -loglevel error -y \
	-f lavfi -i testsrc2=size=640x480:rate=30 -frames:v 90 \
	-c:v libx264 -profile:v baseline -level 3.0 -pix_fmt yuv420p \
	-g 30 -keyint_min 30 -sc_threshold 0 -bf 0 -threads 1 \
	-b:v 500k -maxrate 600k -bufsize 600k \
	-x264-params repeat-headers=1:aud=0 \
	-bitexact -map_metadata -1 -f h264 clip.h264

ffmpeg -hide_banner -loglevel error -y \
	-f lavfi -i sine=frequency=440:sample_rate=8000:duration=3 \
	-ac 1 -ar 8000 -c:a pcm_mulaw -bitexact -map_metadata -1 -f wav clip.wav

ls -l clip.h264 clip.wav
