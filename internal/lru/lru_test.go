package lru

import (
	"slices"
	"testing"
)

// keys lists the entries from least to most recently used.
func keys(l *Map[string, int]) []string {
	var ks []string
	for e := l.ll.Back(); e != nil; e = e.Prev() {
		ks = append(ks, e.Value.(*entry[string, int]).key)
	}
	return ks
}

func TestMap(t *testing.T) {
	l := New[string, int](3)
	for i, k := range []string{"a", "b", "c"} {
		if l.Add(k, i) {
			t.Fatalf("add %s evicted below the bound", k)
		}
	}
	if v, ok := l.Get("a"); !ok || v != 0 {
		t.Fatalf("get a = %d, %v", v, ok)
	}
	if v, ok := l.Peek("b"); !ok || v != 1 {
		t.Fatalf("peek b = %d, %v", v, ok)
	}
	// a was used (b only peeked at), so b is the oldest and goes first.
	if k, v, ok := l.Oldest(); !ok || k != "b" || v != 1 {
		t.Errorf("oldest = %s %d %v, want b 1", k, v, ok)
	}
	if !l.Add("d", 3) {
		t.Error("add beyond the bound evicted nothing")
	}
	if got, want := keys(l), []string{"c", "a", "d"}; !slices.Equal(got, want) {
		t.Errorf("entries %v, want %v", got, want)
	}
	if _, ok := l.Get("b"); ok {
		t.Error("evicted b still found")
	}
	var each []string
	l.Each(func(k string, _ int) { each = append(each, k) })
	if want := []string{"d", "a", "c"}; !slices.Equal(each, want) {
		t.Errorf("Each visits %v, want %v", each, want)
	}
	l.RemoveOldest()
	if got, want := keys(l), []string{"a", "d"}; !slices.Equal(got, want) || l.Len() != 2 {
		t.Errorf("after RemoveOldest: %v (len %d), want %v", got, l.Len(), want)
	}
	l.RemoveOldest()
	l.RemoveOldest()
	l.RemoveOldest() // empty: no-op
	if _, _, ok := l.Oldest(); ok || l.Len() != 0 {
		t.Errorf("emptied map still has %d entries", l.Len())
	}
}

func TestRemove(t *testing.T) {
	l := New[string, int](2)
	l.Add("a", 1)
	l.Add("b", 2)
	l.Remove("a")
	l.Remove("absent")
	if _, ok := l.Get("a"); ok || l.Len() != 1 {
		t.Fatalf("after Remove(a): len %d, a present %t", l.Len(), ok)
	}
	if v, ok := l.Get("b"); !ok || v != 2 {
		t.Fatalf("b = %d, %t", v, ok)
	}
	l.Add("a", 3) // absent again, so Add is allowed
	if v, _ := l.Get("a"); v != 3 {
		t.Fatalf("a = %d after re-adding", v)
	}
}

func TestGetOrAdd(t *testing.T) {
	l := New[string, int](2)
	made := 0
	create := func() int { made++; return made }
	if v := l.GetOrAdd("a", create); v != 1 {
		t.Fatalf("absent a: %d, want the created 1", v)
	}
	if v := l.GetOrAdd("a", create); v != 1 || made != 1 {
		t.Fatalf("present a: %d after %d creations, want 1 after 1", v, made)
	}
	l.Add("b", 20)
	l.GetOrAdd("a", create) // a is now the most recent: b goes first
	if v := l.GetOrAdd("c", create); v != 2 {
		t.Fatalf("absent c: %d, want the created 2", v)
	}
	if got, want := keys(l), []string{"a", "c"}; !slices.Equal(got, want) {
		t.Errorf("entries %v, want %v", got, want)
	}
}
