//go:build ignore

// draw writes the "please wait" slate picture (PNG) to standard output:
// white words on a dark blue field, drawn with a 5x7 bitmap font so no
// font file is needed. gen.sh encodes it.
package main

import (
	"image"
	"image/color"
	"image/png"
	"os"
)

// glyphs are 5x7 bitmaps, one string per row, '#' lit.
var glyphs = map[rune][7]string{
	'P': {"####.", "#...#", "#...#", "####.", "#....", "#....", "#...."},
	'L': {"#....", "#....", "#....", "#....", "#....", "#....", "#####"},
	'E': {"#####", "#....", "#....", "####.", "#....", "#....", "#####"},
	'A': {".###.", "#...#", "#...#", "#####", "#...#", "#...#", "#...#"},
	'S': {".####", "#....", "#....", ".###.", "....#", "....#", "####."},
	'W': {"#...#", "#...#", "#...#", "#.#.#", "#.#.#", "#.#.#", ".#.#."},
	'I': {"#####", "..#..", "..#..", "..#..", "..#..", "..#..", "#####"},
	'T': {"#####", "..#..", "..#..", "..#..", "..#..", "..#..", "..#.."},
	'N': {"#...#", "##..#", "#.#.#", "#..##", "#...#", "#...#", "#...#"},
	'R': {"####.", "#...#", "#...#", "####.", "#.#..", "#..#.", "#...#"},
	'O': {".###.", "#...#", "#...#", "#...#", "#...#", "#...#", ".###."},
	'C': {".####", "#....", "#....", "#....", "#....", "#....", ".####"},
	'G': {".####", "#....", "#....", "#.###", "#...#", "#...#", ".###."},
	'F': {"#####", "#....", "#....", "####.", "#....", "#....", "#...."},
	'.': {".....", ".....", ".....", ".....", ".....", ".....", "..#.."},
	' ': {".....", ".....", ".....", ".....", ".....", ".....", "....."},
}

func text(img *image.RGBA, s string, y, scale int) {
	w := len(s)*6*scale - scale
	x0 := (img.Bounds().Dx() - w) / 2
	for i, r := range s {
		g := glyphs[r]
		for row := 0; row < 7; row++ {
			for col := 0; col < 5; col++ {
				if g[row][col] != '#' {
					continue
				}
				for dy := 0; dy < scale; dy++ {
					for dx := 0; dx < scale; dx++ {
						img.Set(x0+(i*6+col)*scale+dx, y+row*scale+dy, color.White)
					}
				}
			}
		}
	}
}

func main() {
	img := image.NewRGBA(image.Rect(0, 0, 320, 240))
	for y := 0; y < 240; y++ {
		for x := 0; x < 320; x++ {
			img.Set(x, y, color.RGBA{0x10, 0x2a, 0x5c, 0xff})
		}
	}
	text(img, "PLEASE WAIT", 70, 4)
	text(img, "CONNECTING TO AN", 140, 2)
	text(img, "INTERPRETER", 162, 2)
	if err := png.Encode(os.Stdout, img); err != nil {
		panic(err)
	}
}
