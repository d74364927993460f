package carddav

import (
	"context"
	"slices"
	"testing"

	"github.com/emersion/go-vcard"
	"github.com/emersion/go-webdav"
	webdavcarddav "github.com/emersion/go-webdav/carddav"
)

// go-webdav's CardDAV client, a real client library, finds the book,
// writes, reads and syncs it.
func TestGoWebDAVClient(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	hc := webdav.HTTPClientWithBasicAuth(e.client, alice, e.alice)
	c, err := webdavcarddav.NewClient(hc, e.srv.URL+"/dav/")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.HasSupport(ctx); err != nil {
		t.Fatal(err)
	}
	principal, err := c.FindCurrentUserPrincipal(ctx)
	if err != nil || principal != PrincipalPath(alice) {
		t.Fatalf("principal %q, %v", principal, err)
	}
	home, err := c.FindAddressBookHomeSet(ctx, principal)
	if err != nil || home != HomePath(alice) {
		t.Fatalf("home %q, %v", home, err)
	}
	books, err := c.FindAddressBooks(ctx, home)
	if err != nil || len(books) != 1 || books[0].Path != BookPath(alice) || !books[0].SupportsAddressData("text/vcard", "4.0") {
		t.Fatalf("books %+v, %v", books, err)
	}

	first, err := c.SyncCollection(ctx, BookPath(alice), &webdavcarddav.SyncQuery{})
	if err != nil || len(first.Updated) != 0 {
		t.Fatalf("first sync %+v, %v", first, err)
	}

	card := vcard.Card{}
	card.SetValue(vcard.FieldVersion, "4.0")
	card.SetValue(vcard.FieldUID, "urn:uuid:abc")
	card.SetValue(vcard.FieldFormattedName, "Go Client")
	card.SetValue(vcard.FieldTelephone, "+1 202 555 0177")
	card[vcard.FieldTelephone][0].Params = vcard.Params{vcard.ParamType: {"video"}}
	if _, err := c.PutAddressObject(ctx, BookPath(alice)+"abc.vcf", card); err != nil {
		t.Fatal(err)
	}
	got, err := c.MultiGetAddressBook(ctx, BookPath(alice), &webdavcarddav.AddressBookMultiGet{
		Paths:       []string{BookPath(alice) + "abc.vcf"},
		DataRequest: webdavcarddav.AddressDataRequest{AllProp: true},
	})
	if err != nil || len(got) != 1 {
		t.Fatalf("multiget %+v, %v", got, err)
	}
	if fn := got[0].Card.PreferredValue(vcard.FieldFormattedName); fn != "Go Client" || got[0].ETag != "1" {
		t.Errorf("multiget: FN %q ETag %q", fn, got[0].ETag)
	}
	objs, err := c.QueryAddressBook(ctx, BookPath(alice), &webdavcarddav.AddressBookQuery{
		DataRequest: webdavcarddav.AddressDataRequest{Props: []string{vcard.FieldFormattedName}},
		PropFilters: []webdavcarddav.PropFilter{{Name: vcard.FieldFormattedName, TextMatches: []webdavcarddav.TextMatch{{Text: "go client"}}}},
	})
	if err != nil || len(objs) != 1 {
		t.Fatalf("query %+v, %v", objs, err)
	}

	next, err := c.SyncCollection(ctx, BookPath(alice), &webdavcarddav.SyncQuery{SyncToken: first.SyncToken})
	if err != nil || len(next.Updated) != 1 || next.Updated[0].Path != BookPath(alice)+"abc.vcf" {
		t.Fatalf("sync after put %+v, %v", next, err)
	}
	if err := c.RemoveAll(ctx, BookPath(alice)+"abc.vcf"); err != nil {
		t.Fatal(err)
	}
	last, err := c.SyncCollection(ctx, BookPath(alice), &webdavcarddav.SyncQuery{SyncToken: next.SyncToken})
	if err != nil || !slices.Equal(last.Deleted, []string{BookPath(alice) + "abc.vcf"}) {
		t.Fatalf("sync after delete %+v, %v", last, err)
	}
}

// The Backend alone, as go-webdav's interface defines it.
func TestBackend(t *testing.T) {
	e := newEnv(t)
	b := e.h.Backend()
	if _, err := b.ListAddressBooks(context.Background()); err == nil {
		t.Error("no owner in the context, yet a book was listed")
	}
	ctx := WithOwner(context.Background(), alice)
	card := vcard.Card{}
	card.SetValue(vcard.FieldVersion, "4.0")
	card.SetValue(vcard.FieldFormattedName, "Backend")
	card.SetValue(vcard.FieldTelephone, "2025550188")
	ao, err := b.PutAddressObject(ctx, BookPath(alice)+"k", card, &webdavcarddav.PutAddressObjectOptions{IfNoneMatch: "*"})
	if err != nil || ao.ETag != "1" || ao.Path != BookPath(alice)+"k" {
		t.Fatalf("put %+v, %v", ao, err)
	}
	if _, err := b.PutAddressObject(ctx, BookPath(alice)+"k", card, &webdavcarddav.PutAddressObjectOptions{IfMatch: `"9"`}); err == nil {
		t.Error("stale If-Match accepted")
	}
	if _, err := b.GetAddressObject(ctx, ObjectPath(bob, "k"), nil); err == nil {
		t.Error("read another number's contact")
	}
	q := &webdavcarddav.AddressBookQuery{PropFilters: []webdavcarddav.PropFilter{{Name: "FN", TextMatches: []webdavcarddav.TextMatch{{Text: "BACK"}}}}}
	if got, err := b.QueryAddressObjects(ctx, BookPath(alice), q); err != nil || len(got) != 1 {
		t.Errorf("query %+v, %v", got, err)
	}
	if err := b.DeleteAddressObject(ctx, BookPath(alice)+"k"); err != nil {
		t.Fatal(err)
	}
	if err := b.DeleteAddressObject(ctx, BookPath(alice)+"k"); err == nil {
		t.Error("deleted twice")
	}
	if err := b.CreateAddressBook(ctx, &webdavcarddav.AddressBook{Path: HomePath(alice) + "x/"}); err == nil {
		t.Error("created a second book")
	}
}
