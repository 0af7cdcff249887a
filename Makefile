# make && sudo make install   (PREFIX=/usr/local by default)
PREFIX ?= /usr/local
DESTDIR ?=

all:
	cargo build --release

install: all
	install -D -m 0755 target/release/lbctl $(DESTDIR)$(PREFIX)/sbin/lbctl
	install -d $(DESTDIR)$(PREFIX)/share/man/man1
	install -m 0644 man/*.1 $(DESTDIR)$(PREFIX)/share/man/man1/
	install -D -m 0644 completions/lbctl.bash $(DESTDIR)$(PREFIX)/share/bash-completion/completions/lbctl
	install -D -m 0644 completions/_lbctl $(DESTDIR)$(PREFIX)/share/zsh/site-functions/_lbctl
	install -D -m 0644 completions/lbctl.fish $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d/lbctl.fish
	install -D -m 0755 contrib/ifupdown/lbctl $(DESTDIR)/etc/network/lbctl-hook
	for d in if-pre-up.d if-up.d if-down.d if-post-down.d; do \
		install -d $(DESTDIR)/etc/network/$$d; \
		ln -sf /etc/network/lbctl-hook $(DESTDIR)/etc/network/$$d/lbctl; \
	done
	install -D -m 0644 contrib/systemd/lbctl@.service $(DESTDIR)/etc/systemd/system/lbctl@.service
	install -D -m 0644 contrib/systemd/lbctl-lb@.service $(DESTDIR)/etc/systemd/system/lbctl-lb@.service
	install -d $(DESTDIR)/etc/lbctl

docs:
	scripts/gen-docs.sh

test:
	scripts/test.sh

.PHONY: all install docs test
