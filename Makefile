# make && sudo make install   (PREFIX=/usr/local by default)
# make deb                     a Debian package in target/debian/ (prints its path)
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
	@# the ifupdown hook: one script, linked into the four hook directories (as the .deb does)
	install -D -m 0755 contrib/ifupdown/lbctl $(DESTDIR)$(PREFIX)/libexec/lbctl/ifupdown-hook
	for d in if-pre-up.d if-up.d if-down.d if-post-down.d; do \
		install -d $(DESTDIR)/etc/network/$$d; \
		ln -sf $(PREFIX)/libexec/lbctl/ifupdown-hook $(DESTDIR)/etc/network/$$d/lbctl; \
	done
	@# units name /usr/sbin/lbctl (the .deb's path); point them at this PREFIX
	for u in lbctl@.service lbctl-lb@.service; do \
		install -d $(DESTDIR)/etc/systemd/system; \
		sed 's|/usr/sbin/lbctl|$(PREFIX)/sbin/lbctl|g' contrib/systemd/$$u > $(DESTDIR)/etc/systemd/system/$$u; \
		chmod 0644 $(DESTDIR)/etc/systemd/system/$$u; \
	done
	install -d $(DESTDIR)/etc/lbctl $(DESTDIR)/etc/lbctl/lb

deb:
	@scripts/build-deb.sh

docs:
	scripts/gen-docs.sh

test:
	scripts/test.sh

.PHONY: all install deb docs test
