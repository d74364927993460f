package callreport

import (
	"fmt"
	"html"
	"math"
	"strconv"
	"strings"
)

// metric is one chart of the picture.
type metric struct {
	title string
	unit  string // on the chart
	short string // in the summary table
	value func(Row) float64
}

var metrics = []metric{
	{"Bitrate", "kb/s", "kb/s", func(r Row) float64 { return r.Kbps }},
	{"Frame rate", "frames/s; audio: packets/s", "frames/s", func(r Row) float64 { return r.FPS }},
	{"Packet loss", "%", "%", func(r Row) float64 { return r.LossPct }},
	{"Jitter", "ms", "ms", func(r Row) float64 { return r.JitterMs }},
	{"Round-trip time", "ms", "ms", func(r Row) float64 { return r.RTTMs }},
}

// series is one stream in one direction, drawn the same way in every
// chart. Each has its own dash pattern and marker, so the picture reads in
// grey and to a colour-blind eye; the colours (Okabe-Ito) only help.
type series struct {
	stream, direction string
	label             string
	color             string
	dash              string // stroke-dasharray, "" for solid
	marker            string // circle, square, triangle, diamond
}

var allSeries = []series{
	{"video", Send, "video sent (far end's view)", "#0072B2", "", "circle"},
	{"video", Recv, "video received", "#D55E00", "8 4", "square"},
	{"audio", Send, "audio sent (far end's view)", "#009E73", "2 3", "triangle"},
	{"audio", Recv, "audio received", "#CC79A7", "10 3 2 3", "diamond"},
}

// Layout in SVG user units.
const (
	svgWidth    = 760
	marginLeft  = 70
	marginRight = 20
	legendH     = 70
	chartH      = 190 // per chart, title and x labels included
	plotTop     = 28  // chart title above the plot
	plotH       = 120
	plotW       = svgWidth - marginLeft - marginRight
	maxMarkers  = 60 // per series and chart; more would hide the line
)

// SVG draws rows as one small chart per metric over time, with a legend,
// labelled axes, and a <title> and <desc> that say in words what the charts
// show. title names the call (a file name, a date).
func SVG(rows []Row, title string) []byte {
	var present []series
	for _, s := range allSeries {
		for _, r := range rows {
			if r.Stream == s.stream && r.Direction == s.direction {
				present = append(present, s)
				break
			}
		}
	}
	tMax := 1.0
	for _, r := range rows {
		tMax = math.Max(tMax, r.Time)
	}
	xStep := niceStep(tMax, 8)
	tMax = math.Ceil(tMax/xStep) * xStep

	height := legendH + len(metrics)*chartH
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" role="img" aria-labelledby="title desc" font-family="sans-serif" font-size="12">`+"\n",
		svgWidth, height, svgWidth, height)
	fmt.Fprintf(&b, "<title id=\"title\">Call quality: %s</title>\n", esc(title))
	fmt.Fprintf(&b, "<desc id=\"desc\">%s</desc>\n", esc(describe(rows, present)))
	b.WriteString(`<rect width="100%" height="100%" fill="white"/>` + "\n")
	fmt.Fprintf(&b, `<text x="%d" y="20" font-size="16" font-weight="bold">Call quality: %s</text>`+"\n", marginLeft, esc(title))
	legend(&b, present)
	for i, m := range metrics {
		chart(&b, m, rows, present, legendH+i*chartH, tMax, xStep)
	}
	b.WriteString("</svg>\n")
	return []byte(b.String())
}

func esc(s string) string { return html.EscapeString(s) }

func legend(b *strings.Builder, present []series) {
	b.WriteString(`<g aria-label="legend">` + "\n")
	for i, s := range present {
		x := marginLeft + (i%2)*340
		y := 40 + (i/2)*20
		fmt.Fprintf(b, `<line x1="%d" y1="%d" x2="%d" y2="%d" %s/>`, x, y, x+40, y, strokeAttrs(s))
		marker(b, s, float64(x+20), float64(y))
		fmt.Fprintf(b, `<text x="%d" y="%d">%s</text>`+"\n", x+48, y+4, esc(s.label))
	}
	b.WriteString("</g>\n")
}

func strokeAttrs(s series) string {
	a := fmt.Sprintf(`stroke="%s" stroke-width="2" fill="none"`, s.color)
	if s.dash != "" {
		a += fmt.Sprintf(` stroke-dasharray="%s"`, s.dash)
	}
	return a
}

func marker(b *strings.Builder, s series, x, y float64) {
	switch s.marker {
	case "circle":
		fmt.Fprintf(b, `<circle cx="%s" cy="%s" r="3.5" fill="%s"/>`, num(x), num(y), s.color)
	case "square":
		fmt.Fprintf(b, `<rect x="%s" y="%s" width="7" height="7" fill="%s"/>`, num(x-3.5), num(y-3.5), s.color)
	case "triangle":
		fmt.Fprintf(b, `<path d="M%s %sL%s %sL%s %sZ" fill="%s"/>`, num(x), num(y-4), num(x+4), num(y+3), num(x-4), num(y+3), s.color)
	case "diamond":
		fmt.Fprintf(b, `<path d="M%s %sL%s %sL%s %sL%s %sZ" fill="%s"/>`, num(x), num(y-4.5), num(x+4.5), num(y), num(x), num(y+4.5), num(x-4.5), num(y), s.color)
	}
}

func num(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) }

// chart draws one metric: frame, grid, ticks, axis labels, one line per
// series broken where the value is unknown.
func chart(b *strings.Builder, m metric, rows []Row, present []series, top int, tMax, xStep float64) {
	yMax := 0.0
	for _, r := range rows {
		if v := m.value(r); !math.IsNaN(v) {
			yMax = math.Max(yMax, v)
		}
	}
	if yMax == 0 {
		yMax = 1
	}
	yStep := niceStep(yMax, 4)
	yMax = math.Ceil(yMax/yStep) * yStep
	py := float64(top + plotTop)
	xOf := func(t float64) float64 { return marginLeft + t/tMax*plotW }
	yOf := func(v float64) float64 { return py + plotH - v/yMax*plotH }

	fmt.Fprintf(b, `<g role="img" aria-label="%s in %s over time">`+"\n", esc(m.title), esc(m.unit))
	fmt.Fprintf(b, "<title>%s (%s) over the call</title>\n", esc(m.title), esc(m.unit))
	fmt.Fprintf(b, `<text x="%d" y="%d" font-weight="bold">%s (%s)</text>`+"\n", marginLeft, top+plotTop-8, esc(m.title), esc(m.unit))
	for v := 0.0; v <= yMax+yStep/2; v += yStep {
		y := yOf(v)
		fmt.Fprintf(b, `<line x1="%d" y1="%s" x2="%d" y2="%s" stroke="#ddd"/>`, marginLeft, num(y), marginLeft+plotW, num(y))
		fmt.Fprintf(b, `<text x="%d" y="%s" text-anchor="end">%s</text>`+"\n", marginLeft-6, num(y+4), tick(v, yStep))
	}
	for t := 0.0; t <= tMax+xStep/2; t += xStep {
		x := xOf(t)
		fmt.Fprintf(b, `<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="#555"/>`, num(x), num(py+plotH), num(x), num(py+plotH+4))
		fmt.Fprintf(b, `<text x="%s" y="%s" text-anchor="middle">%s</text>`+"\n", num(x), num(py+plotH+17), tick(t, xStep))
	}
	fmt.Fprintf(b, `<rect x="%d" y="%s" width="%d" height="%d" fill="none" stroke="#555"/>`+"\n", marginLeft, num(py), plotW, plotH)
	fmt.Fprintf(b, `<text x="%d" y="%s" text-anchor="middle">time since answer (s)</text>`+"\n", marginLeft+plotW/2, num(py+plotH+32))
	for _, s := range present {
		var d strings.Builder
		var pts [][2]float64
		pen := false
		for _, r := range rows {
			if r.Stream != s.stream || r.Direction != s.direction {
				continue
			}
			v := m.value(r)
			if math.IsNaN(v) {
				pen = false
				continue
			}
			x, y := xOf(r.Time), yOf(v)
			if pen {
				d.WriteString("L")
			} else {
				d.WriteString("M")
			}
			d.WriteString(num(x) + " " + num(y))
			pen = true
			pts = append(pts, [2]float64{x, y})
		}
		if len(pts) == 0 {
			continue
		}
		fmt.Fprintf(b, `<g aria-label="%s"><path d="%s" %s/>`, esc(s.label), d.String(), strokeAttrs(s))
		every := (len(pts) + maxMarkers - 1) / maxMarkers
		for i := 0; i < len(pts); i += every {
			marker(b, s, pts[i][0], pts[i][1])
		}
		b.WriteString("</g>\n")
	}
	b.WriteString("</g>\n")
}

// niceStep is a tick step of 1, 2 or 5 times a power of ten that splits
// max into at most n intervals.
func niceStep(max float64, n int) float64 {
	raw := max / float64(n)
	p := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= raw {
			return m * p
		}
	}
	return 10 * p
}

// tick formats a tick value with as many decimals as the step needs.
func tick(v, step float64) string {
	dec := 0
	for s := step; s < 1 && dec < 6; s *= 10 {
		dec++
	}
	return strconv.FormatFloat(v, 'f', dec, 64)
}

// describe says what the charts show in a few sentences: for a reader
// who cannot see them, and for support reading a ticket.
func describe(rows []Row, present []series) string {
	if len(rows) == 0 {
		return "No samples: the stats file is empty."
	}
	var parts []string
	parts = append(parts, fmt.Sprintf("%d seconds of call statistics in %d charts over time: bitrate, frame rate, packet loss, jitter and round-trip time.", int(math.Round(lastTime(rows))), len(metrics)))
	for _, s := range present {
		var sum []string
		for _, m := range metrics {
			st := Summarize(rows, s.stream, s.direction, m.value)
			if st.N == 0 {
				continue
			}
			sum = append(sum, fmt.Sprintf("%s average %.1f, max %.1f %s", strings.ToLower(m.title), st.Avg, st.Max, m.short))
		}
		if len(sum) > 0 {
			parts = append(parts, fmt.Sprintf("%s (%s line): %s.", capitalize(s.label), lineName(s), strings.Join(sum, "; ")))
		}
	}
	return strings.Join(parts, " ")
}

func lastTime(rows []Row) float64 {
	t := 0.0
	for _, r := range rows {
		t = math.Max(t, r.Time)
	}
	return t
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

func lineName(s series) string {
	switch s.dash {
	case "":
		return "solid, circles"
	case "8 4":
		return "dashed, squares"
	case "2 3":
		return "dotted, triangles"
	}
	return "dash-dot, diamonds"
}

// Stat summarizes one metric of one series; N counts known values.
type Stat struct {
	N             int
	Min, Avg, Max float64
}

// Summarize is the minimum, mean and maximum of a metric over the rows of
// one stream and direction, unknown values left out.
func Summarize(rows []Row, stream, direction string, value func(Row) float64) Stat {
	var st Stat
	sum := 0.0
	for _, r := range rows {
		if r.Stream != stream || r.Direction != direction {
			continue
		}
		v := value(r)
		if math.IsNaN(v) {
			continue
		}
		if st.N == 0 || v < st.Min {
			st.Min = v
		}
		st.Max = math.Max(st.Max, v)
		sum += v
		st.N++
	}
	if st.N > 0 {
		st.Avg = sum / float64(st.N)
	}
	return st
}

// Summary is a plain-text table of the minimum, average and maximum of
// every metric per stream and direction.
func Summary(rows []Row) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-28s %-20s %8s %8s %8s\n", "series", "metric", "min", "avg", "max")
	for _, s := range allSeries {
		for _, m := range metrics {
			st := Summarize(rows, s.stream, s.direction, m.value)
			if st.N == 0 {
				continue
			}
			fmt.Fprintf(&b, "%-28s %-20s %8.1f %8.1f %8.1f\n", s.label, m.title+" "+m.short, st.Min, st.Avg, st.Max)
		}
	}
	return b.String()
}
