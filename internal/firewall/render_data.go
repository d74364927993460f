package firewall

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"strconv"
)

// renderCSV writes one row per rule under the header
// step,group,proto,ports,destination,purpose,site,node.
func renderCSV(b *bytes.Buffer, rules []Rule) error {
	w := csv.NewWriter(b)
	rows := [][]string{{"step", "group", "proto", "ports", "destination", "purpose", "site", "node"}}
	for _, r := range rules {
		rows = append(rows, []string{
			strconv.Itoa(r.Step), r.Group, r.Proto, r.Ports.String(), r.Dest.String(), r.Purpose, r.Site, r.Node,
		})
	}
	if err := w.WriteAll(rows); err != nil {
		return fmt.Errorf("render csv: %w", err)
	}
	return nil
}

// jsonRule is the JSON shape of a Rule. Ports appear both as the seed writes
// them and as numbers, so scripts need not parse "10000-65535".
type jsonRule struct {
	Step        int    `json:"step"`
	Group       string `json:"group"`
	Proto       string `json:"proto"`
	Ports       string `json:"ports"`
	PortMin     int    `json:"port_min"`
	PortMax     int    `json:"port_max"`
	Destination string `json:"destination"`
	Purpose     string `json:"purpose"`
	Site        string `json:"site"`
	Node        string `json:"node"`
}

// renderJSON writes an array of rule objects, [] when there are none.
func renderJSON(b *bytes.Buffer, rules []Rule) error {
	out := make([]jsonRule, 0, len(rules))
	for _, r := range rules {
		out = append(out, jsonRule{
			Step: r.Step, Group: r.Group, Proto: r.Proto,
			Ports: r.Ports.String(), PortMin: r.Ports.Min, PortMax: r.Ports.Max,
			Destination: r.Dest.String(), Purpose: r.Purpose, Site: r.Site, Node: r.Node,
		})
	}
	enc := json.NewEncoder(b)
	enc.SetIndent("", "  ")
	if err := enc.Encode(out); err != nil {
		return fmt.Errorf("render json: %w", err)
	}
	return nil
}
