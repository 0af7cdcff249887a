# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_lbctl_global_optspecs
    string join \n json v/verbose q/quiet netns= n/dry-run h/help V/version
end

function __fish_lbctl_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_lbctl_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_lbctl_using_subcommand
    set -l cmd (__fish_lbctl_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c lbctl -n "__fish_lbctl_needs_command" -l netns -d 'Run inside the named network namespace (as created by `ip netns add NAME`)' -r
complete -c lbctl -n "__fish_lbctl_needs_command" -l json -d 'Machine-readable JSON output on stdout'
complete -c lbctl -n "__fish_lbctl_needs_command" -s v -l verbose -d 'More detail (repeat for more)'
complete -c lbctl -n "__fish_lbctl_needs_command" -s q -l quiet -d 'Only errors'
complete -c lbctl -n "__fish_lbctl_needs_command" -s n -l dry-run -d 'Print the plan as `ip`/`nft`/`sysctl` commands and change nothing'
complete -c lbctl -n "__fish_lbctl_needs_command" -s h -l help -d 'Print help'
complete -c lbctl -n "__fish_lbctl_needs_command" -s V -l version -d 'Print version'
complete -c lbctl -n "__fish_lbctl_needs_command" -f -a "vip" -d 'Manage VIPs on this backend (a /32 or /128 on `lo` by default)'
complete -c lbctl -n "__fish_lbctl_needs_command" -f -a "arp" -d 'Keep this backend from answering ARP for its VIPs'
complete -c lbctl -n "__fish_lbctl_needs_command" -f -a "route" -d 'Source-based policy routing so replies from a VIP leave by the right gateway'
complete -c lbctl -n "__fish_lbctl_needs_command" -f -a "rpfilter" -d 'Report and fix reverse-path filtering (rp_filter) for DSR traffic'
complete -c lbctl -n "__fish_lbctl_needs_command" -f -a "plan" -d 'Show what applying a profile would change (exit 1 if anything)'
complete -c lbctl -n "__fish_lbctl_needs_command" -f -a "apply" -d 'Converge this host to a profile (all or nothing: a failure rolls back)'
complete -c lbctl -n "__fish_lbctl_needs_command" -f -a "status" -d 'Show what lbctl manages and any drift (exit 1 on drift)'
complete -c lbctl -n "__fish_lbctl_needs_command" -f -a "watch" -d 'Keep what lbctl owns converged: re-apply drift (a flushed nft ruleset, a deleted VIP, a reset sysctl) within a second, logging each repair. Runs until SIGTERM/SIGINT'
complete -c lbctl -n "__fish_lbctl_needs_command" -f -a "down" -d 'Remove what lbctl added (for one profile, or everything) and restore recorded sysctls'
complete -c lbctl -n "__fish_lbctl_needs_command" -f -a "lb" -d 'The balancer: kernel IPVS in direct-routing mode'
complete -c lbctl -n "__fish_lbctl_needs_command" -f -a "doctor" -d 'Check this host\'s DSR set-up and say what is wrong and how to fix it'
complete -c lbctl -n "__fish_lbctl_needs_command" -f -a "firewall" -d 'Would the firewall pass a DSR flow? The nftables verdict (iptables-nft included) for a client\'s SYN to VIP:PORT and the SYN-ACK back, with the dropping rule and a fix'
complete -c lbctl -n "__fish_lbctl_needs_command" -f -a "capture" -d 'tcpdump-like capture on raw AF_PACKET sockets (no libpcap), with MACs and direction'
complete -c lbctl -n "__fish_lbctl_needs_command" -f -a "lab" -d 'A DSR sandbox in network namespaces: switch, client, balancer and backends, built with lbctl itself (`lbctl lab demo` shows it all in a few seconds)'
complete -c lbctl -n "__fish_lbctl_needs_command" -f -a "gen" -d 'Generate shell completions or man pages from this command line definition'
complete -c lbctl -n "__fish_lbctl_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c lbctl -n "__fish_lbctl_using_subcommand vip; and not __fish_seen_subcommand_from add del list help" -l netns -d 'Run inside the named network namespace (as created by `ip netns add NAME`)' -r
complete -c lbctl -n "__fish_lbctl_using_subcommand vip; and not __fish_seen_subcommand_from add del list help" -l json -d 'Machine-readable JSON output on stdout'
complete -c lbctl -n "__fish_lbctl_using_subcommand vip; and not __fish_seen_subcommand_from add del list help" -s v -l verbose -d 'More detail (repeat for more)'
complete -c lbctl -n "__fish_lbctl_using_subcommand vip; and not __fish_seen_subcommand_from add del list help" -s q -l quiet -d 'Only errors'
complete -c lbctl -n "__fish_lbctl_using_subcommand vip; and not __fish_seen_subcommand_from add del list help" -s n -l dry-run -d 'Print the plan as `ip`/`nft`/`sysctl` commands and change nothing'
complete -c lbctl -n "__fish_lbctl_using_subcommand vip; and not __fish_seen_subcommand_from add del list help" -s h -l help -d 'Print help'
complete -c lbctl -n "__fish_lbctl_using_subcommand vip; and not __fish_seen_subcommand_from add del list help" -s V -l version -d 'Print version'
complete -c lbctl -n "__fish_lbctl_using_subcommand vip; and not __fish_seen_subcommand_from add del list help" -f -a "add" -d 'Add VIP as /32 (/128, nodad) on DEV. A no-op when lbctl already added it'
complete -c lbctl -n "__fish_lbctl_using_subcommand vip; and not __fish_seen_subcommand_from add del list help" -f -a "del" -d 'Delete a VIP lbctl added (`--force` for one it did not add)'
complete -c lbctl -n "__fish_lbctl_using_subcommand vip; and not __fish_seen_subcommand_from add del list help" -f -a "list" -d 'List host-prefix addresses on `lo` and every lbctl VIP, owned or foreign'
complete -c lbctl -n "__fish_lbctl_using_subcommand vip; and not __fish_seen_subcommand_from add del list help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c lbctl -n "__fish_lbctl_using_subcommand vip; and __fish_seen_subcommand_from add" -l dev -d 'Device to put the VIP on' -r
complete -c lbctl -n "__fish_lbctl_using_subcommand vip; and __fish_seen_subcommand_from add" -l netns -d 'Run inside the named network namespace (as created by `ip netns add NAME`)' -r
complete -c lbctl -n "__fish_lbctl_using_subcommand vip; and __fish_seen_subcommand_from add" -l json -d 'Machine-readable JSON output on stdout'
complete -c lbctl -n "__fish_lbctl_using_subcommand vip; and __fish_seen_subcommand_from add" -s v -l verbose -d 'More detail (repeat for more)'
complete -c lbctl -n "__fish_lbctl_using_subcommand vip; and __fish_seen_subcommand_from add" -s q -l quiet -d 'Only errors'
complete -c lbctl -n "__fish_lbctl_using_subcommand vip; and __fish_seen_subcommand_from add" -s n -l dry-run -d 'Print the plan as `ip`/`nft`/`sysctl` commands and change nothing'
complete -c lbctl -n "__fish_lbctl_using_subcommand vip; and __fish_seen_subcommand_from add" -s h -l help -d 'Print help'
complete -c lbctl -n "__fish_lbctl_using_subcommand vip; and __fish_seen_subcommand_from add" -s V -l version -d 'Print version'
complete -c lbctl -n "__fish_lbctl_using_subcommand vip; and __fish_seen_subcommand_from del" -l dev -d 'Device the VIP is on' -r
complete -c lbctl -n "__fish_lbctl_using_subcommand vip; and __fish_seen_subcommand_from del" -l netns -d 'Run inside the named network namespace (as created by `ip netns add NAME`)' -r
complete -c lbctl -n "__fish_lbctl_using_subcommand vip; and __fish_seen_subcommand_from del" -l force -d 'Delete the address even though lbctl did not add it'
complete -c lbctl -n "__fish_lbctl_using_subcommand vip; and __fish_seen_subcommand_from del" -l json -d 'Machine-readable JSON output on stdout'
complete -c lbctl -n "__fish_lbctl_using_subcommand vip; and __fish_seen_subcommand_from del" -s v -l verbose -d 'More detail (repeat for more)'
complete -c lbctl -n "__fish_lbctl_using_subcommand vip; and __fish_seen_subcommand_from del" -s q -l quiet -d 'Only errors'
complete -c lbctl -n "__fish_lbctl_using_subcommand vip; and __fish_seen_subcommand_from del" -s n -l dry-run -d 'Print the plan as `ip`/`nft`/`sysctl` commands and change nothing'
complete -c lbctl -n "__fish_lbctl_using_subcommand vip; and __fish_seen_subcommand_from del" -s h -l help -d 'Print help'
complete -c lbctl -n "__fish_lbctl_using_subcommand vip; and __fish_seen_subcommand_from del" -s V -l version -d 'Print version'
complete -c lbctl -n "__fish_lbctl_using_subcommand vip; and __fish_seen_subcommand_from list" -l netns -d 'Run inside the named network namespace (as created by `ip netns add NAME`)' -r
complete -c lbctl -n "__fish_lbctl_using_subcommand vip; and __fish_seen_subcommand_from list" -l json -d 'Machine-readable JSON output on stdout'
complete -c lbctl -n "__fish_lbctl_using_subcommand vip; and __fish_seen_subcommand_from list" -s v -l verbose -d 'More detail (repeat for more)'
complete -c lbctl -n "__fish_lbctl_using_subcommand vip; and __fish_seen_subcommand_from list" -s q -l quiet -d 'Only errors'
complete -c lbctl -n "__fish_lbctl_using_subcommand vip; and __fish_seen_subcommand_from list" -s n -l dry-run -d 'Print the plan as `ip`/`nft`/`sysctl` commands and change nothing'
complete -c lbctl -n "__fish_lbctl_using_subcommand vip; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help'
complete -c lbctl -n "__fish_lbctl_using_subcommand vip; and __fish_seen_subcommand_from list" -s V -l version -d 'Print version'
complete -c lbctl -n "__fish_lbctl_using_subcommand vip; and __fish_seen_subcommand_from help" -f -a "add" -d 'Add VIP as /32 (/128, nodad) on DEV. A no-op when lbctl already added it'
complete -c lbctl -n "__fish_lbctl_using_subcommand vip; and __fish_seen_subcommand_from help" -f -a "del" -d 'Delete a VIP lbctl added (`--force` for one it did not add)'
complete -c lbctl -n "__fish_lbctl_using_subcommand vip; and __fish_seen_subcommand_from help" -f -a "list" -d 'List host-prefix addresses on `lo` and every lbctl VIP, owned or foreign'
complete -c lbctl -n "__fish_lbctl_using_subcommand vip; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c lbctl -n "__fish_lbctl_using_subcommand arp; and not __fish_seen_subcommand_from suppress restore status help" -l netns -d 'Run inside the named network namespace (as created by `ip netns add NAME`)' -r
complete -c lbctl -n "__fish_lbctl_using_subcommand arp; and not __fish_seen_subcommand_from suppress restore status help" -l json -d 'Machine-readable JSON output on stdout'
complete -c lbctl -n "__fish_lbctl_using_subcommand arp; and not __fish_seen_subcommand_from suppress restore status help" -s v -l verbose -d 'More detail (repeat for more)'
complete -c lbctl -n "__fish_lbctl_using_subcommand arp; and not __fish_seen_subcommand_from suppress restore status help" -s q -l quiet -d 'Only errors'
complete -c lbctl -n "__fish_lbctl_using_subcommand arp; and not __fish_seen_subcommand_from suppress restore status help" -s n -l dry-run -d 'Print the plan as `ip`/`nft`/`sysctl` commands and change nothing'
complete -c lbctl -n "__fish_lbctl_using_subcommand arp; and not __fish_seen_subcommand_from suppress restore status help" -s h -l help -d 'Print help'
complete -c lbctl -n "__fish_lbctl_using_subcommand arp; and not __fish_seen_subcommand_from suppress restore status help" -s V -l version -d 'Print version'
complete -c lbctl -n "__fish_lbctl_using_subcommand arp; and not __fish_seen_subcommand_from suppress restore status help" -f -a "suppress" -d 'Stop answering ARP for VIP (do this before `vip add`)'
complete -c lbctl -n "__fish_lbctl_using_subcommand arp; and not __fish_seen_subcommand_from suppress restore status help" -f -a "restore" -d 'Undo `suppress` for VIP, restoring exactly the prior state'
complete -c lbctl -n "__fish_lbctl_using_subcommand arp; and not __fish_seen_subcommand_from suppress restore status help" -f -a "status" -d 'Show the suppression lbctl manages and the effective ARP sysctls'
complete -c lbctl -n "__fish_lbctl_using_subcommand arp; and not __fish_seen_subcommand_from suppress restore status help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c lbctl -n "__fish_lbctl_using_subcommand arp; and __fish_seen_subcommand_from suppress" -l real-ip -d 'This backend\'s real IP on the ARP-facing interface (the ARP sender used instead of the VIP)' -r
complete -c lbctl -n "__fish_lbctl_using_subcommand arp; and __fish_seen_subcommand_from suppress" -l iface -d 'The ARP-facing interface (sysctl mode; default: the interface holding the real IP)' -r
complete -c lbctl -n "__fish_lbctl_using_subcommand arp; and __fish_seen_subcommand_from suppress" -l mode -d 'How to suppress' -r -f -a "nft\t'An lbctl-owned `arp` family nftables table (drop requests for the VIP, rewrite it as sender)'
sysctl\t'The arp_ignore=1 / arp_announce=2 sysctls on the ARP-facing interface'"
complete -c lbctl -n "__fish_lbctl_using_subcommand arp; and __fish_seen_subcommand_from suppress" -l netns -d 'Run inside the named network namespace (as created by `ip netns add NAME`)' -r
complete -c lbctl -n "__fish_lbctl_using_subcommand arp; and __fish_seen_subcommand_from suppress" -l json -d 'Machine-readable JSON output on stdout'
complete -c lbctl -n "__fish_lbctl_using_subcommand arp; and __fish_seen_subcommand_from suppress" -s v -l verbose -d 'More detail (repeat for more)'
complete -c lbctl -n "__fish_lbctl_using_subcommand arp; and __fish_seen_subcommand_from suppress" -s q -l quiet -d 'Only errors'
complete -c lbctl -n "__fish_lbctl_using_subcommand arp; and __fish_seen_subcommand_from suppress" -s n -l dry-run -d 'Print the plan as `ip`/`nft`/`sysctl` commands and change nothing'
complete -c lbctl -n "__fish_lbctl_using_subcommand arp; and __fish_seen_subcommand_from suppress" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c lbctl -n "__fish_lbctl_using_subcommand arp; and __fish_seen_subcommand_from suppress" -s V -l version -d 'Print version'
complete -c lbctl -n "__fish_lbctl_using_subcommand arp; and __fish_seen_subcommand_from restore" -l real-ip -d 'This backend\'s real IP on the ARP-facing interface (the ARP sender used instead of the VIP)' -r
complete -c lbctl -n "__fish_lbctl_using_subcommand arp; and __fish_seen_subcommand_from restore" -l iface -d 'The ARP-facing interface (sysctl mode; default: the interface holding the real IP)' -r
complete -c lbctl -n "__fish_lbctl_using_subcommand arp; and __fish_seen_subcommand_from restore" -l mode -d 'How to suppress' -r -f -a "nft\t'An lbctl-owned `arp` family nftables table (drop requests for the VIP, rewrite it as sender)'
sysctl\t'The arp_ignore=1 / arp_announce=2 sysctls on the ARP-facing interface'"
complete -c lbctl -n "__fish_lbctl_using_subcommand arp; and __fish_seen_subcommand_from restore" -l netns -d 'Run inside the named network namespace (as created by `ip netns add NAME`)' -r
complete -c lbctl -n "__fish_lbctl_using_subcommand arp; and __fish_seen_subcommand_from restore" -l json -d 'Machine-readable JSON output on stdout'
complete -c lbctl -n "__fish_lbctl_using_subcommand arp; and __fish_seen_subcommand_from restore" -s v -l verbose -d 'More detail (repeat for more)'
complete -c lbctl -n "__fish_lbctl_using_subcommand arp; and __fish_seen_subcommand_from restore" -s q -l quiet -d 'Only errors'
complete -c lbctl -n "__fish_lbctl_using_subcommand arp; and __fish_seen_subcommand_from restore" -s n -l dry-run -d 'Print the plan as `ip`/`nft`/`sysctl` commands and change nothing'
complete -c lbctl -n "__fish_lbctl_using_subcommand arp; and __fish_seen_subcommand_from restore" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c lbctl -n "__fish_lbctl_using_subcommand arp; and __fish_seen_subcommand_from restore" -s V -l version -d 'Print version'
complete -c lbctl -n "__fish_lbctl_using_subcommand arp; and __fish_seen_subcommand_from status" -l iface -d 'Only this interface\'s sysctls' -r
complete -c lbctl -n "__fish_lbctl_using_subcommand arp; and __fish_seen_subcommand_from status" -l netns -d 'Run inside the named network namespace (as created by `ip netns add NAME`)' -r
complete -c lbctl -n "__fish_lbctl_using_subcommand arp; and __fish_seen_subcommand_from status" -l json -d 'Machine-readable JSON output on stdout'
complete -c lbctl -n "__fish_lbctl_using_subcommand arp; and __fish_seen_subcommand_from status" -s v -l verbose -d 'More detail (repeat for more)'
complete -c lbctl -n "__fish_lbctl_using_subcommand arp; and __fish_seen_subcommand_from status" -s q -l quiet -d 'Only errors'
complete -c lbctl -n "__fish_lbctl_using_subcommand arp; and __fish_seen_subcommand_from status" -s n -l dry-run -d 'Print the plan as `ip`/`nft`/`sysctl` commands and change nothing'
complete -c lbctl -n "__fish_lbctl_using_subcommand arp; and __fish_seen_subcommand_from status" -s h -l help -d 'Print help'
complete -c lbctl -n "__fish_lbctl_using_subcommand arp; and __fish_seen_subcommand_from status" -s V -l version -d 'Print version'
complete -c lbctl -n "__fish_lbctl_using_subcommand arp; and __fish_seen_subcommand_from help" -f -a "suppress" -d 'Stop answering ARP for VIP (do this before `vip add`)'
complete -c lbctl -n "__fish_lbctl_using_subcommand arp; and __fish_seen_subcommand_from help" -f -a "restore" -d 'Undo `suppress` for VIP, restoring exactly the prior state'
complete -c lbctl -n "__fish_lbctl_using_subcommand arp; and __fish_seen_subcommand_from help" -f -a "status" -d 'Show the suppression lbctl manages and the effective ARP sysctls'
complete -c lbctl -n "__fish_lbctl_using_subcommand arp; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c lbctl -n "__fish_lbctl_using_subcommand route; and not __fish_seen_subcommand_from add del list help" -l netns -d 'Run inside the named network namespace (as created by `ip netns add NAME`)' -r
complete -c lbctl -n "__fish_lbctl_using_subcommand route; and not __fish_seen_subcommand_from add del list help" -l json -d 'Machine-readable JSON output on stdout'
complete -c lbctl -n "__fish_lbctl_using_subcommand route; and not __fish_seen_subcommand_from add del list help" -s v -l verbose -d 'More detail (repeat for more)'
complete -c lbctl -n "__fish_lbctl_using_subcommand route; and not __fish_seen_subcommand_from add del list help" -s q -l quiet -d 'Only errors'
complete -c lbctl -n "__fish_lbctl_using_subcommand route; and not __fish_seen_subcommand_from add del list help" -s n -l dry-run -d 'Print the plan as `ip`/`nft`/`sysctl` commands and change nothing'
complete -c lbctl -n "__fish_lbctl_using_subcommand route; and not __fish_seen_subcommand_from add del list help" -s h -l help -d 'Print help'
complete -c lbctl -n "__fish_lbctl_using_subcommand route; and not __fish_seen_subcommand_from add del list help" -s V -l version -d 'Print version'
complete -c lbctl -n "__fish_lbctl_using_subcommand route; and not __fish_seen_subcommand_from add del list help" -f -a "add" -d '`ip rule from VIP lookup T` + default via GW + IF\'s connected routes, all in table T'
complete -c lbctl -n "__fish_lbctl_using_subcommand route; and not __fish_seen_subcommand_from add del list help" -f -a "del" -d 'Remove the policy routing lbctl added for VIP'
complete -c lbctl -n "__fish_lbctl_using_subcommand route; and not __fish_seen_subcommand_from add del list help" -f -a "list" -d 'Show the policy routing lbctl manages'
complete -c lbctl -n "__fish_lbctl_using_subcommand route; and not __fish_seen_subcommand_from add del list help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c lbctl -n "__fish_lbctl_using_subcommand route; and __fish_seen_subcommand_from add" -l table -d 'Routing table id (1-4294967295 except 253, 254, 255)' -r
complete -c lbctl -n "__fish_lbctl_using_subcommand route; and __fish_seen_subcommand_from add" -l via -d 'Gateway for replies from the VIP' -r
complete -c lbctl -n "__fish_lbctl_using_subcommand route; and __fish_seen_subcommand_from add" -l dev -d 'Interface towards the gateway; its connected routes are copied into table T' -r
complete -c lbctl -n "__fish_lbctl_using_subcommand route; and __fish_seen_subcommand_from add" -l priority -d 'Rule priority' -r
complete -c lbctl -n "__fish_lbctl_using_subcommand route; and __fish_seen_subcommand_from add" -l netns -d 'Run inside the named network namespace (as created by `ip netns add NAME`)' -r
complete -c lbctl -n "__fish_lbctl_using_subcommand route; and __fish_seen_subcommand_from add" -l json -d 'Machine-readable JSON output on stdout'
complete -c lbctl -n "__fish_lbctl_using_subcommand route; and __fish_seen_subcommand_from add" -s v -l verbose -d 'More detail (repeat for more)'
complete -c lbctl -n "__fish_lbctl_using_subcommand route; and __fish_seen_subcommand_from add" -s q -l quiet -d 'Only errors'
complete -c lbctl -n "__fish_lbctl_using_subcommand route; and __fish_seen_subcommand_from add" -s n -l dry-run -d 'Print the plan as `ip`/`nft`/`sysctl` commands and change nothing'
complete -c lbctl -n "__fish_lbctl_using_subcommand route; and __fish_seen_subcommand_from add" -s h -l help -d 'Print help'
complete -c lbctl -n "__fish_lbctl_using_subcommand route; and __fish_seen_subcommand_from add" -s V -l version -d 'Print version'
complete -c lbctl -n "__fish_lbctl_using_subcommand route; and __fish_seen_subcommand_from del" -l table -d 'Routing table id given to `route add`' -r
complete -c lbctl -n "__fish_lbctl_using_subcommand route; and __fish_seen_subcommand_from del" -l netns -d 'Run inside the named network namespace (as created by `ip netns add NAME`)' -r
complete -c lbctl -n "__fish_lbctl_using_subcommand route; and __fish_seen_subcommand_from del" -l json -d 'Machine-readable JSON output on stdout'
complete -c lbctl -n "__fish_lbctl_using_subcommand route; and __fish_seen_subcommand_from del" -s v -l verbose -d 'More detail (repeat for more)'
complete -c lbctl -n "__fish_lbctl_using_subcommand route; and __fish_seen_subcommand_from del" -s q -l quiet -d 'Only errors'
complete -c lbctl -n "__fish_lbctl_using_subcommand route; and __fish_seen_subcommand_from del" -s n -l dry-run -d 'Print the plan as `ip`/`nft`/`sysctl` commands and change nothing'
complete -c lbctl -n "__fish_lbctl_using_subcommand route; and __fish_seen_subcommand_from del" -s h -l help -d 'Print help'
complete -c lbctl -n "__fish_lbctl_using_subcommand route; and __fish_seen_subcommand_from del" -s V -l version -d 'Print version'
complete -c lbctl -n "__fish_lbctl_using_subcommand route; and __fish_seen_subcommand_from list" -l netns -d 'Run inside the named network namespace (as created by `ip netns add NAME`)' -r
complete -c lbctl -n "__fish_lbctl_using_subcommand route; and __fish_seen_subcommand_from list" -l json -d 'Machine-readable JSON output on stdout'
complete -c lbctl -n "__fish_lbctl_using_subcommand route; and __fish_seen_subcommand_from list" -s v -l verbose -d 'More detail (repeat for more)'
complete -c lbctl -n "__fish_lbctl_using_subcommand route; and __fish_seen_subcommand_from list" -s q -l quiet -d 'Only errors'
complete -c lbctl -n "__fish_lbctl_using_subcommand route; and __fish_seen_subcommand_from list" -s n -l dry-run -d 'Print the plan as `ip`/`nft`/`sysctl` commands and change nothing'
complete -c lbctl -n "__fish_lbctl_using_subcommand route; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help'
complete -c lbctl -n "__fish_lbctl_using_subcommand route; and __fish_seen_subcommand_from list" -s V -l version -d 'Print version'
complete -c lbctl -n "__fish_lbctl_using_subcommand route; and __fish_seen_subcommand_from help" -f -a "add" -d '`ip rule from VIP lookup T` + default via GW + IF\'s connected routes, all in table T'
complete -c lbctl -n "__fish_lbctl_using_subcommand route; and __fish_seen_subcommand_from help" -f -a "del" -d 'Remove the policy routing lbctl added for VIP'
complete -c lbctl -n "__fish_lbctl_using_subcommand route; and __fish_seen_subcommand_from help" -f -a "list" -d 'Show the policy routing lbctl manages'
complete -c lbctl -n "__fish_lbctl_using_subcommand route; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c lbctl -n "__fish_lbctl_using_subcommand rpfilter; and not __fish_seen_subcommand_from check fix restore help" -l netns -d 'Run inside the named network namespace (as created by `ip netns add NAME`)' -r
complete -c lbctl -n "__fish_lbctl_using_subcommand rpfilter; and not __fish_seen_subcommand_from check fix restore help" -l json -d 'Machine-readable JSON output on stdout'
complete -c lbctl -n "__fish_lbctl_using_subcommand rpfilter; and not __fish_seen_subcommand_from check fix restore help" -s v -l verbose -d 'More detail (repeat for more)'
complete -c lbctl -n "__fish_lbctl_using_subcommand rpfilter; and not __fish_seen_subcommand_from check fix restore help" -s q -l quiet -d 'Only errors'
complete -c lbctl -n "__fish_lbctl_using_subcommand rpfilter; and not __fish_seen_subcommand_from check fix restore help" -s n -l dry-run -d 'Print the plan as `ip`/`nft`/`sysctl` commands and change nothing'
complete -c lbctl -n "__fish_lbctl_using_subcommand rpfilter; and not __fish_seen_subcommand_from check fix restore help" -s h -l help -d 'Print help'
complete -c lbctl -n "__fish_lbctl_using_subcommand rpfilter; and not __fish_seen_subcommand_from check fix restore help" -s V -l version -d 'Print version'
complete -c lbctl -n "__fish_lbctl_using_subcommand rpfilter; and not __fish_seen_subcommand_from check fix restore help" -f -a "check" -d 'Report rp_filter (all, default, each interface, effective = max(all, iface))'
complete -c lbctl -n "__fish_lbctl_using_subcommand rpfilter; and not __fish_seen_subcommand_from check fix restore help" -f -a "fix" -d 'Set loose mode (2) where the effective mode is strict (1), recording prior values'
complete -c lbctl -n "__fish_lbctl_using_subcommand rpfilter; and not __fish_seen_subcommand_from check fix restore help" -f -a "restore" -d 'Put back the rp_filter values `fix` changed'
complete -c lbctl -n "__fish_lbctl_using_subcommand rpfilter; and not __fish_seen_subcommand_from check fix restore help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c lbctl -n "__fish_lbctl_using_subcommand rpfilter; and __fish_seen_subcommand_from check" -l iface -d 'Only this interface' -r
complete -c lbctl -n "__fish_lbctl_using_subcommand rpfilter; and __fish_seen_subcommand_from check" -l vip -d 'Simulate a request from --client to this VIP' -r
complete -c lbctl -n "__fish_lbctl_using_subcommand rpfilter; and __fish_seen_subcommand_from check" -l client -d 'Client address for the simulation' -r
complete -c lbctl -n "__fish_lbctl_using_subcommand rpfilter; and __fish_seen_subcommand_from check" -l netns -d 'Run inside the named network namespace (as created by `ip netns add NAME`)' -r
complete -c lbctl -n "__fish_lbctl_using_subcommand rpfilter; and __fish_seen_subcommand_from check" -l json -d 'Machine-readable JSON output on stdout'
complete -c lbctl -n "__fish_lbctl_using_subcommand rpfilter; and __fish_seen_subcommand_from check" -s v -l verbose -d 'More detail (repeat for more)'
complete -c lbctl -n "__fish_lbctl_using_subcommand rpfilter; and __fish_seen_subcommand_from check" -s q -l quiet -d 'Only errors'
complete -c lbctl -n "__fish_lbctl_using_subcommand rpfilter; and __fish_seen_subcommand_from check" -s n -l dry-run -d 'Print the plan as `ip`/`nft`/`sysctl` commands and change nothing'
complete -c lbctl -n "__fish_lbctl_using_subcommand rpfilter; and __fish_seen_subcommand_from check" -s h -l help -d 'Print help'
complete -c lbctl -n "__fish_lbctl_using_subcommand rpfilter; and __fish_seen_subcommand_from check" -s V -l version -d 'Print version'
complete -c lbctl -n "__fish_lbctl_using_subcommand rpfilter; and __fish_seen_subcommand_from fix" -l iface -d 'Only this interface' -r
complete -c lbctl -n "__fish_lbctl_using_subcommand rpfilter; and __fish_seen_subcommand_from fix" -l vip -d 'Simulate a request from --client to this VIP' -r
complete -c lbctl -n "__fish_lbctl_using_subcommand rpfilter; and __fish_seen_subcommand_from fix" -l client -d 'Client address for the simulation' -r
complete -c lbctl -n "__fish_lbctl_using_subcommand rpfilter; and __fish_seen_subcommand_from fix" -l netns -d 'Run inside the named network namespace (as created by `ip netns add NAME`)' -r
complete -c lbctl -n "__fish_lbctl_using_subcommand rpfilter; and __fish_seen_subcommand_from fix" -l json -d 'Machine-readable JSON output on stdout'
complete -c lbctl -n "__fish_lbctl_using_subcommand rpfilter; and __fish_seen_subcommand_from fix" -s v -l verbose -d 'More detail (repeat for more)'
complete -c lbctl -n "__fish_lbctl_using_subcommand rpfilter; and __fish_seen_subcommand_from fix" -s q -l quiet -d 'Only errors'
complete -c lbctl -n "__fish_lbctl_using_subcommand rpfilter; and __fish_seen_subcommand_from fix" -s n -l dry-run -d 'Print the plan as `ip`/`nft`/`sysctl` commands and change nothing'
complete -c lbctl -n "__fish_lbctl_using_subcommand rpfilter; and __fish_seen_subcommand_from fix" -s h -l help -d 'Print help'
complete -c lbctl -n "__fish_lbctl_using_subcommand rpfilter; and __fish_seen_subcommand_from fix" -s V -l version -d 'Print version'
complete -c lbctl -n "__fish_lbctl_using_subcommand rpfilter; and __fish_seen_subcommand_from restore" -l netns -d 'Run inside the named network namespace (as created by `ip netns add NAME`)' -r
complete -c lbctl -n "__fish_lbctl_using_subcommand rpfilter; and __fish_seen_subcommand_from restore" -l json -d 'Machine-readable JSON output on stdout'
complete -c lbctl -n "__fish_lbctl_using_subcommand rpfilter; and __fish_seen_subcommand_from restore" -s v -l verbose -d 'More detail (repeat for more)'
complete -c lbctl -n "__fish_lbctl_using_subcommand rpfilter; and __fish_seen_subcommand_from restore" -s q -l quiet -d 'Only errors'
complete -c lbctl -n "__fish_lbctl_using_subcommand rpfilter; and __fish_seen_subcommand_from restore" -s n -l dry-run -d 'Print the plan as `ip`/`nft`/`sysctl` commands and change nothing'
complete -c lbctl -n "__fish_lbctl_using_subcommand rpfilter; and __fish_seen_subcommand_from restore" -s h -l help -d 'Print help'
complete -c lbctl -n "__fish_lbctl_using_subcommand rpfilter; and __fish_seen_subcommand_from restore" -s V -l version -d 'Print version'
complete -c lbctl -n "__fish_lbctl_using_subcommand rpfilter; and __fish_seen_subcommand_from help" -f -a "check" -d 'Report rp_filter (all, default, each interface, effective = max(all, iface))'
complete -c lbctl -n "__fish_lbctl_using_subcommand rpfilter; and __fish_seen_subcommand_from help" -f -a "fix" -d 'Set loose mode (2) where the effective mode is strict (1), recording prior values'
complete -c lbctl -n "__fish_lbctl_using_subcommand rpfilter; and __fish_seen_subcommand_from help" -f -a "restore" -d 'Put back the rp_filter values `fix` changed'
complete -c lbctl -n "__fish_lbctl_using_subcommand rpfilter; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c lbctl -n "__fish_lbctl_using_subcommand plan" -s f -l file -d 'The profile (TOML; see profiles/ for commented examples)' -r -F
complete -c lbctl -n "__fish_lbctl_using_subcommand plan" -l netns -d 'Run inside the named network namespace (as created by `ip netns add NAME`)' -r
complete -c lbctl -n "__fish_lbctl_using_subcommand plan" -l json -d 'Machine-readable JSON output on stdout'
complete -c lbctl -n "__fish_lbctl_using_subcommand plan" -s v -l verbose -d 'More detail (repeat for more)'
complete -c lbctl -n "__fish_lbctl_using_subcommand plan" -s q -l quiet -d 'Only errors'
complete -c lbctl -n "__fish_lbctl_using_subcommand plan" -s n -l dry-run -d 'Print the plan as `ip`/`nft`/`sysctl` commands and change nothing'
complete -c lbctl -n "__fish_lbctl_using_subcommand plan" -s h -l help -d 'Print help'
complete -c lbctl -n "__fish_lbctl_using_subcommand plan" -s V -l version -d 'Print version'
complete -c lbctl -n "__fish_lbctl_using_subcommand apply" -s f -l file -d 'The profile (TOML; see profiles/ for commented examples)' -r -F
complete -c lbctl -n "__fish_lbctl_using_subcommand apply" -l netns -d 'Run inside the named network namespace (as created by `ip netns add NAME`)' -r
complete -c lbctl -n "__fish_lbctl_using_subcommand apply" -l json -d 'Machine-readable JSON output on stdout'
complete -c lbctl -n "__fish_lbctl_using_subcommand apply" -s v -l verbose -d 'More detail (repeat for more)'
complete -c lbctl -n "__fish_lbctl_using_subcommand apply" -s q -l quiet -d 'Only errors'
complete -c lbctl -n "__fish_lbctl_using_subcommand apply" -s n -l dry-run -d 'Print the plan as `ip`/`nft`/`sysctl` commands and change nothing'
complete -c lbctl -n "__fish_lbctl_using_subcommand apply" -s h -l help -d 'Print help'
complete -c lbctl -n "__fish_lbctl_using_subcommand apply" -s V -l version -d 'Print version'
complete -c lbctl -n "__fish_lbctl_using_subcommand status" -s f -l file -d 'Only this profile (also reports changes in the file not yet applied)' -r -F
complete -c lbctl -n "__fish_lbctl_using_subcommand status" -l netns -d 'Run inside the named network namespace (as created by `ip netns add NAME`)' -r
complete -c lbctl -n "__fish_lbctl_using_subcommand status" -l json -d 'Machine-readable JSON output on stdout'
complete -c lbctl -n "__fish_lbctl_using_subcommand status" -s v -l verbose -d 'More detail (repeat for more)'
complete -c lbctl -n "__fish_lbctl_using_subcommand status" -s q -l quiet -d 'Only errors'
complete -c lbctl -n "__fish_lbctl_using_subcommand status" -s n -l dry-run -d 'Print the plan as `ip`/`nft`/`sysctl` commands and change nothing'
complete -c lbctl -n "__fish_lbctl_using_subcommand status" -s h -l help -d 'Print help'
complete -c lbctl -n "__fish_lbctl_using_subcommand status" -s V -l version -d 'Print version'
complete -c lbctl -n "__fish_lbctl_using_subcommand watch" -s f -l file -d 'Apply this profile first (and again on SIGHUP), then keep it — and everything else lbctl owns here — converged' -r -F
complete -c lbctl -n "__fish_lbctl_using_subcommand watch" -l interval -d 'How often to compare the kernel with the journal, in milliseconds (100–60000)' -r
complete -c lbctl -n "__fish_lbctl_using_subcommand watch" -l netns -d 'Run inside the named network namespace (as created by `ip netns add NAME`)' -r
complete -c lbctl -n "__fish_lbctl_using_subcommand watch" -l json -d 'Machine-readable JSON output on stdout'
complete -c lbctl -n "__fish_lbctl_using_subcommand watch" -s v -l verbose -d 'More detail (repeat for more)'
complete -c lbctl -n "__fish_lbctl_using_subcommand watch" -s q -l quiet -d 'Only errors'
complete -c lbctl -n "__fish_lbctl_using_subcommand watch" -s n -l dry-run -d 'Print the plan as `ip`/`nft`/`sysctl` commands and change nothing'
complete -c lbctl -n "__fish_lbctl_using_subcommand watch" -s h -l help -d 'Print help'
complete -c lbctl -n "__fish_lbctl_using_subcommand watch" -s V -l version -d 'Print version'
complete -c lbctl -n "__fish_lbctl_using_subcommand down" -s f -l file -d 'Remove what this profile added' -r -F
complete -c lbctl -n "__fish_lbctl_using_subcommand down" -l owner -d 'Remove what one owner added, as `lbctl status` names it (`cli`, `profile:NAME`, `lb:NAME`)' -r
complete -c lbctl -n "__fish_lbctl_using_subcommand down" -l netns -d 'Run inside the named network namespace (as created by `ip netns add NAME`)' -r
complete -c lbctl -n "__fish_lbctl_using_subcommand down" -l all -d 'Remove everything lbctl added in this namespace: profiles, one-shot commands, and the balancers\' IPVS services, nft tables and VIPs'
complete -c lbctl -n "__fish_lbctl_using_subcommand down" -l json -d 'Machine-readable JSON output on stdout'
complete -c lbctl -n "__fish_lbctl_using_subcommand down" -s v -l verbose -d 'More detail (repeat for more)'
complete -c lbctl -n "__fish_lbctl_using_subcommand down" -s q -l quiet -d 'Only errors'
complete -c lbctl -n "__fish_lbctl_using_subcommand down" -s n -l dry-run -d 'Print the plan as `ip`/`nft`/`sysctl` commands and change nothing'
complete -c lbctl -n "__fish_lbctl_using_subcommand down" -s h -l help -d 'Print help'
complete -c lbctl -n "__fish_lbctl_using_subcommand down" -s V -l version -d 'Print version'
complete -c lbctl -n "__fish_lbctl_using_subcommand lb; and not __fish_seen_subcommand_from service backend drain list save restore apply run status maglev help" -l netns -d 'Run inside the named network namespace (as created by `ip netns add NAME`)' -r
complete -c lbctl -n "__fish_lbctl_using_subcommand lb; and not __fish_seen_subcommand_from service backend drain list save restore apply run status maglev help" -l json -d 'Machine-readable JSON output on stdout'
complete -c lbctl -n "__fish_lbctl_using_subcommand lb; and not __fish_seen_subcommand_from service backend drain list save restore apply run status maglev help" -s v -l verbose -d 'More detail (repeat for more)'
complete -c lbctl -n "__fish_lbctl_using_subcommand lb; and not __fish_seen_subcommand_from service backend drain list save restore apply run status maglev help" -s q -l quiet -d 'Only errors'
complete -c lbctl -n "__fish_lbctl_using_subcommand lb; and not __fish_seen_subcommand_from service backend drain list save restore apply run status maglev help" -s n -l dry-run -d 'Print the plan as `ip`/`nft`/`sysctl` commands and change nothing'
complete -c lbctl -n "__fish_lbctl_using_subcommand lb; and not __fish_seen_subcommand_from service backend drain list save restore apply run status maglev help" -s h -l help -d 'Print help'
complete -c lbctl -n "__fish_lbctl_using_subcommand lb; and not __fish_seen_subcommand_from service backend drain list save restore apply run status maglev help" -s V -l version -d 'Print version'
complete -c lbctl -n "__fish_lbctl_using_subcommand lb; and not __fish_seen_subcommand_from service backend drain list save restore apply run status maglev help" -f -a "service" -d 'Add, change or delete a virtual service (ipvsadm -A/-E/-D)'
complete -c lbctl -n "__fish_lbctl_using_subcommand lb; and not __fish_seen_subcommand_from service backend drain list save restore apply run status maglev help" -f -a "backend" -d 'Add, change or delete a real server of a service (ipvsadm -a/-e/-d); DR by default'
complete -c lbctl -n "__fish_lbctl_using_subcommand lb; and not __fish_seen_subcommand_from service backend drain list save restore apply run status maglev help" -f -a "drain" -d 'Drain a real server: weight 0, so it gets no new connections while established ones continue (turns on mh/sh fallback where the scheduler needs it)'
complete -c lbctl -n "__fish_lbctl_using_subcommand lb; and not __fish_seen_subcommand_from service backend drain list save restore apply run status maglev help" -f -a "list" -d 'List services and real servers like `ipvsadm -Ln` (--stats/--rate for counters)'
complete -c lbctl -n "__fish_lbctl_using_subcommand lb; and not __fish_seen_subcommand_from service backend drain list save restore apply run status maglev help" -f -a "save" -d 'Print the IPVS table as `ipvsadm -S -n` rules (for `lb restore` or `ipvsadm -R`)'
complete -c lbctl -n "__fish_lbctl_using_subcommand lb; and not __fish_seen_subcommand_from service backend drain list save restore apply run status maglev help" -f -a "restore" -d 'Apply ipvsadm rules (`lb save` / `ipvsadm -S` output): all checked against the current table before the first change, undone on failure'
complete -c lbctl -n "__fish_lbctl_using_subcommand lb; and not __fish_seen_subcommand_from service backend drain list save restore apply run status maglev help" -f -a "apply" -d 'Converge IPVS to an LB file (see profiles/lb-example.toml): only what differs is changed, undone on failure, verified'
complete -c lbctl -n "__fish_lbctl_using_subcommand lb; and not __fish_seen_subcommand_from service backend drain list save restore apply run status maglev help" -f -a "run" -d 'Run the balancer daemon: own the VIPs, program the data path (IPVS, or nftables with Maglev where IPVS is missing), health-check backends and take failed ones out'
complete -c lbctl -n "__fish_lbctl_using_subcommand lb; and not __fish_seen_subcommand_from service backend drain list save restore apply run status maglev help" -f -a "status" -d 'Show what `lb run` is doing: backends, state, last check, weight (exit 1 if a backend is not up, 2 if no daemon runs)'
complete -c lbctl -n "__fish_lbctl_using_subcommand lb; and not __fish_seen_subcommand_from service backend drain list save restore apply run status maglev help" -f -a "maglev" -d 'Maglev table balance, and the disruption of removing or adding a backend, for a table size M (to pick M)'
complete -c lbctl -n "__fish_lbctl_using_subcommand lb; and not __fish_seen_subcommand_from service backend drain list save restore apply run status maglev help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c lbctl -n "__fish_lbctl_using_subcommand lb; and __fish_seen_subcommand_from service" -l netns -d 'Run inside the named network namespace (as created by `ip netns add NAME`)' -r
complete -c lbctl -n "__fish_lbctl_using_subcommand lb; and __fish_seen_subcommand_from service" -l json -d 'Machine-readable JSON output on stdout'
complete -c lbctl -n "__fish_lbctl_using_subcommand lb; and __fish_seen_subcommand_from service" -s v -l verbose -d 'More detail (repeat for more)'
complete -c lbctl -n "__fish_lbctl_using_subcommand lb; and __fish_seen_subcommand_from service" -s q -l quiet -d 'Only errors'
complete -c lbctl -n "__fish_lbctl_using_subcommand lb; and __fish_seen_subcommand_from service" -s n -l dry-run -d 'Print the plan as `ip`/`nft`/`sysctl` commands and change nothing'
complete -c lbctl -n "__fish_lbctl_using_subcommand lb; and __fish_seen_subcommand_from service" -s h -l help -d 'Print help'
complete -c lbctl -n "__fish_lbctl_using_subcommand lb; and __fish_seen_subcommand_from service" -s V -l version -d 'Print version'
complete -c lbctl -n "__fish_lbctl_using_subcommand lb; and __fish_seen_subcommand_from service" -f -a "add" -d 'Create a service (unchanged when it exists with the same settings)'
complete -c lbctl -n "__fish_lbctl_using_subcommand lb; and __fish_seen_subcommand_from service" -f -a "edit" -d 'Change an existing service; options not given keep their value'
complete -c lbctl -n "__fish_lbctl_using_subcommand lb; and __fish_seen_subcommand_from service" -f -a "del" -d 'Delete a service with its real servers (unchanged when it does not exist)'
complete -c lbctl -n "__fish_lbctl_using_subcommand lb; and __fish_seen_subcommand_from service" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c lbctl -n "__fish_lbctl_using_subcommand lb; and __fish_seen_subcommand_from backend" -l netns -d 'Run inside the named network namespace (as created by `ip netns add NAME`)' -r
complete -c lbctl -n "__fish_lbctl_using_subcommand lb; and __fish_seen_subcommand_from backend" -l json -d 'Machine-readable JSON output on stdout'
complete -c lbctl -n "__fish_lbctl_using_subcommand lb; and __fish_seen_subcommand_from backend" -s v -l verbose -d 'More detail (repeat for more)'
complete -c lbctl -n "__fish_lbctl_using_subcommand lb; and __fish_seen_subcommand_from backend" -s q -l quiet -d 'Only errors'
complete -c lbctl -n "__fish_lbctl_using_subcommand lb; and __fish_seen_subcommand_from backend" -s n -l dry-run -d 'Print the plan as `ip`/`nft`/`sysctl` commands and change nothing'
complete -c lbctl -n "__fish_lbctl_using_subcommand lb; and __fish_seen_subcommand_from backend" -s h -l help -d 'Print help'
complete -c lbctl -n "__fish_lbctl_using_subcommand lb; and __fish_seen_subcommand_from backend" -s V -l version -d 'Print version'
complete -c lbctl -n "__fish_lbctl_using_subcommand lb; and __fish_seen_subcommand_from backend" -f -a "add" -d 'Add a real server (unchanged when it exists with the same settings)'
complete -c lbctl -n "__fish_lbctl_using_subcommand lb; and __fish_seen_subcommand_from backend" -f -a "edit" -d 'Change a real server; options not given keep their value'
complete -c lbctl -n "__fish_lbctl_using_subcommand lb; and __fish_seen_subcommand_from backend" -f -a "del" -d 'Delete a real server (unchanged when it does not exist)'
complete -c lbctl -n "__fish_lbctl_using_subcommand lb; and __fish_seen_subcommand_from backend" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c lbctl -n "__fish_lbctl_using_subcommand lb; and __fish_seen_subcommand_from drain" -l proto -d 'Protocol of a VIP:PORT service [default: tcp]' -r -f -a "tcp\t''
udp\t''
sctp\t''"
complete -c lbctl -n "__fish_lbctl_using_subcommand lb; and __fish_seen_subcommand_from drain" -l netns -d 'Run inside the named network namespace (as created by `ip netns add NAME`)' -r
complete -c lbctl -n "__fish_lbctl_using_subcommand lb; and __fish_seen_subcommand_from drain" -l ipv6 -d 'The fwmark service is IPv6'
complete -c lbctl -n "__fish_lbctl_using_subcommand lb; and __fish_seen_subcommand_from drain" -l json -d 'Machine-readable JSON output on stdout'
complete -c lbctl -n "__fish_lbctl_using_subcommand lb; and __fish_seen_subcommand_from drain" -s v -l verbose -d 'More detail (repeat for more)'
complete -c lbctl -n "__fish_lbctl_using_subcommand lb; and __fish_seen_subcommand_from drain" -s q -l quiet -d 'Only errors'
complete -c lbctl -n "__fish_lbctl_using_subcommand lb; and __fish_seen_subcommand_from drain" -s n -l dry-run -d 'Print the plan as `ip`/`nft`/`sysctl` commands and change nothing'
complete -c lbctl -n "__fish_lbctl_using_subcommand lb; and __fish_seen_subcommand_from drain" -s h -l help -d 'Print help'
complete -c lbctl -n "__fish_lbctl_using_subcommand lb; and __fish_seen_subcommand_from drain" -s V -l version -d 'Print version'
complete -c lbctl -n "__fish_lbctl_using_subcommand lb; and __fish_seen_subcommand_from list" -l proto -d 'Protocol of the VIP:PORT service [default: tcp]' -r -f -a "tcp\t''
udp\t''
sctp\t''"
complete -c lbctl -n "__fish_lbctl_using_subcommand lb; and __fish_seen_subcommand_from list" -l netns -d 'Run inside the named network namespace (as created by `ip netns add NAME`)' -r
complete -c lbctl -n "__fish_lbctl_using_subcommand lb; and __fish_seen_subcommand_from list" -l ipv6 -d 'The fwmark service is IPv6'
complete -c lbctl -n "__fish_lbctl_using_subcommand lb; and __fish_seen_subcommand_from list" -l stats -d 'Counters: connections, packets, bytes (ipvsadm --stats). In DR mode OutPkts stays 0'
complete -c lbctl -n "__fish_lbctl_using_subcommand lb; and __fish_seen_subcommand_from list" -l rate -d 'Rates per second (ipvsadm --rate)'
complete -c lbctl -n "__fish_lbctl_using_subcommand lb; and __fish_seen_subcommand_from list" -l exact -d 'Exact numbers instead of K/M/G/T abbreviations (ipvsadm --exact)'
complete -c lbctl -n "__fish_lbctl_using_subcommand lb; and __fish_seen_subcommand_from list" -l json -d 'Machine-readable JSON output on stdout'
complete -c lbctl -n "__fish_lbctl_using_subcommand lb; and __fish_seen_subcommand_from list" -s v -l verbose -d 'More detail (repeat for more)'
complete -c lbctl -n "__fish_lbctl_using_subcommand lb; and __fish_seen_subcommand_from list" -s q -l quiet -d 'Only errors'
complete -c lbctl -n "__fish_lbctl_using_subcommand lb; and __fish_seen_subcommand_from list" -s n -l dry-run -d 'Print the plan as `ip`/`nft`/`sysctl` commands and change nothing'
complete -c lbctl -n "__fish_lbctl_using_subcommand lb; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help'
complete -c lbctl -n "__fish_lbctl_using_subcommand lb; and __fish_seen_subcommand_from list" -s V -l version -d 'Print version'
complete -c lbctl -n "__fish_lbctl_using_subcommand lb; and __fish_seen_subcommand_from save" -l netns -d 'Run inside the named network namespace (as created by `ip netns add NAME`)' -r
complete -c lbctl -n "__fish_lbctl_using_subcommand lb; and __fish_seen_subcommand_from save" -l json -d 'Machine-readable JSON output on stdout'
complete -c lbctl -n "__fish_lbctl_using_subcommand lb; and __fish_seen_subcommand_from save" -s v -l verbose -d 'More detail (repeat for more)'
complete -c lbctl -n "__fish_lbctl_using_subcommand lb; and __fish_seen_subcommand_from save" -s q -l quiet -d 'Only errors'
complete -c lbctl -n "__fish_lbctl_using_subcommand lb; and __fish_seen_subcommand_from save" -s n -l dry-run -d 'Print the plan as `ip`/`nft`/`sysctl` commands and change nothing'
complete -c lbctl -n "__fish_lbctl_using_subcommand lb; and __fish_seen_subcommand_from save" -s h -l help -d 'Print help'
complete -c lbctl -n "__fish_lbctl_using_subcommand lb; and __fish_seen_subcommand_from save" -s V -l version -d 'Print version'
complete -c lbctl -n "__fish_lbctl_using_subcommand lb; and __fish_seen_subcommand_from restore" -l netns -d 'Run inside the named network namespace (as created by `ip netns add NAME`)' -r
complete -c lbctl -n "__fish_lbctl_using_subcommand lb; and __fish_seen_subcommand_from restore" -l flush -d 'Make the table exactly the file\'s (like `ipvsadm -C` first, but only what differs is changed and a failure restores the old table)'
complete -c lbctl -n "__fish_lbctl_using_subcommand lb; and __fish_seen_subcommand_from restore" -l json -d 'Machine-readable JSON output on stdout'
complete -c lbctl -n "__fish_lbctl_using_subcommand lb; and __fish_seen_subcommand_from restore" -s v -l verbose -d 'More detail (repeat for more)'
complete -c lbctl -n "__fish_lbctl_using_subcommand lb; and __fish_seen_subcommand_from restore" -s q -l quiet -d 'Only errors'
complete -c lbctl -n "__fish_lbctl_using_subcommand lb; and __fish_seen_subcommand_from restore" -s n -l dry-run -d 'Print the plan as `ip`/`nft`/`sysctl` commands and change nothing'
complete -c lbctl -n "__fish_lbctl_using_subcommand lb; and __fish_seen_subcommand_from restore" -s h -l help -d 'Print help'
complete -c lbctl -n "__fish_lbctl_using_subcommand lb; and __fish_seen_subcommand_from restore" -s V -l version -d 'Print version'
complete -c lbctl -n "__fish_lbctl_using_subcommand lb; and __fish_seen_subcommand_from apply" -s f -l file -d 'The LB file (TOML; see profiles/lb-example.toml)' -r -F
complete -c lbctl -n "__fish_lbctl_using_subcommand lb; and __fish_seen_subcommand_from apply" -l netns -d 'Run inside the named network namespace (as created by `ip netns add NAME`)' -r
complete -c lbctl -n "__fish_lbctl_using_subcommand lb; and __fish_seen_subcommand_from apply" -l prune -d 'Also delete every service the file does not list (by default only the ones this file created earlier)'
complete -c lbctl -n "__fish_lbctl_using_subcommand lb; and __fish_seen_subcommand_from apply" -l json -d 'Machine-readable JSON output on stdout'
complete -c lbctl -n "__fish_lbctl_using_subcommand lb; and __fish_seen_subcommand_from apply" -s v -l verbose -d 'More detail (repeat for more)'
complete -c lbctl -n "__fish_lbctl_using_subcommand lb; and __fish_seen_subcommand_from apply" -s q -l quiet -d 'Only errors'
complete -c lbctl -n "__fish_lbctl_using_subcommand lb; and __fish_seen_subcommand_from apply" -s n -l dry-run -d 'Print the plan as `ip`/`nft`/`sysctl` commands and change nothing'
complete -c lbctl -n "__fish_lbctl_using_subcommand lb; and __fish_seen_subcommand_from apply" -s h -l help -d 'Print help'
complete -c lbctl -n "__fish_lbctl_using_subcommand lb; and __fish_seen_subcommand_from apply" -s V -l version -d 'Print version'
complete -c lbctl -n "__fish_lbctl_using_subcommand lb; and __fish_seen_subcommand_from run" -s c -l config -d 'The LB file: services and backends as for `lb apply`, plus `[balancer]` and `[service.check]` (see profiles/lb-run-example.toml)' -r -F
complete -c lbctl -n "__fish_lbctl_using_subcommand lb; and __fish_seen_subcommand_from run" -l netns -d 'Run inside the named network namespace (as created by `ip netns add NAME`)' -r
complete -c lbctl -n "__fish_lbctl_using_subcommand lb; and __fish_seen_subcommand_from run" -l cleanup -d 'On SIGTERM/SIGINT remove the data path and the VIPs (default: leave them serving)'
complete -c lbctl -n "__fish_lbctl_using_subcommand lb; and __fish_seen_subcommand_from run" -l json -d 'Machine-readable JSON output on stdout'
complete -c lbctl -n "__fish_lbctl_using_subcommand lb; and __fish_seen_subcommand_from run" -s v -l verbose -d 'More detail (repeat for more)'
complete -c lbctl -n "__fish_lbctl_using_subcommand lb; and __fish_seen_subcommand_from run" -s q -l quiet -d 'Only errors'
complete -c lbctl -n "__fish_lbctl_using_subcommand lb; and __fish_seen_subcommand_from run" -s n -l dry-run -d 'Print the plan as `ip`/`nft`/`sysctl` commands and change nothing'
complete -c lbctl -n "__fish_lbctl_using_subcommand lb; and __fish_seen_subcommand_from run" -s h -l help -d 'Print help'
complete -c lbctl -n "__fish_lbctl_using_subcommand lb; and __fish_seen_subcommand_from run" -s V -l version -d 'Print version'
complete -c lbctl -n "__fish_lbctl_using_subcommand lb; and __fish_seen_subcommand_from status" -l netns -d 'Run inside the named network namespace (as created by `ip netns add NAME`)' -r
complete -c lbctl -n "__fish_lbctl_using_subcommand lb; and __fish_seen_subcommand_from status" -l json -d 'Machine-readable JSON output on stdout'
complete -c lbctl -n "__fish_lbctl_using_subcommand lb; and __fish_seen_subcommand_from status" -s v -l verbose -d 'More detail (repeat for more)'
complete -c lbctl -n "__fish_lbctl_using_subcommand lb; and __fish_seen_subcommand_from status" -s q -l quiet -d 'Only errors'
complete -c lbctl -n "__fish_lbctl_using_subcommand lb; and __fish_seen_subcommand_from status" -s n -l dry-run -d 'Print the plan as `ip`/`nft`/`sysctl` commands and change nothing'
complete -c lbctl -n "__fish_lbctl_using_subcommand lb; and __fish_seen_subcommand_from status" -s h -l help -d 'Print help'
complete -c lbctl -n "__fish_lbctl_using_subcommand lb; and __fish_seen_subcommand_from status" -s V -l version -d 'Print version'
complete -c lbctl -n "__fish_lbctl_using_subcommand lb; and __fish_seen_subcommand_from maglev" -l backends -d 'Backends as NAME[=WEIGHT], comma-separated or repeated (e.g. 198.18.0.11,198.18.0.12=2)' -r
complete -c lbctl -n "__fish_lbctl_using_subcommand lb; and __fish_seen_subcommand_from maglev" -l size -d 'Table size M (must be prime; guidance: M > 100 × backends)' -r
complete -c lbctl -n "__fish_lbctl_using_subcommand lb; and __fish_seen_subcommand_from maglev" -l netns -d 'Run inside the named network namespace (as created by `ip netns add NAME`)' -r
complete -c lbctl -n "__fish_lbctl_using_subcommand lb; and __fish_seen_subcommand_from maglev" -l json -d 'Machine-readable JSON output on stdout'
complete -c lbctl -n "__fish_lbctl_using_subcommand lb; and __fish_seen_subcommand_from maglev" -s v -l verbose -d 'More detail (repeat for more)'
complete -c lbctl -n "__fish_lbctl_using_subcommand lb; and __fish_seen_subcommand_from maglev" -s q -l quiet -d 'Only errors'
complete -c lbctl -n "__fish_lbctl_using_subcommand lb; and __fish_seen_subcommand_from maglev" -s n -l dry-run -d 'Print the plan as `ip`/`nft`/`sysctl` commands and change nothing'
complete -c lbctl -n "__fish_lbctl_using_subcommand lb; and __fish_seen_subcommand_from maglev" -s h -l help -d 'Print help'
complete -c lbctl -n "__fish_lbctl_using_subcommand lb; and __fish_seen_subcommand_from maglev" -s V -l version -d 'Print version'
complete -c lbctl -n "__fish_lbctl_using_subcommand lb; and __fish_seen_subcommand_from help" -f -a "service" -d 'Add, change or delete a virtual service (ipvsadm -A/-E/-D)'
complete -c lbctl -n "__fish_lbctl_using_subcommand lb; and __fish_seen_subcommand_from help" -f -a "backend" -d 'Add, change or delete a real server of a service (ipvsadm -a/-e/-d); DR by default'
complete -c lbctl -n "__fish_lbctl_using_subcommand lb; and __fish_seen_subcommand_from help" -f -a "drain" -d 'Drain a real server: weight 0, so it gets no new connections while established ones continue (turns on mh/sh fallback where the scheduler needs it)'
complete -c lbctl -n "__fish_lbctl_using_subcommand lb; and __fish_seen_subcommand_from help" -f -a "list" -d 'List services and real servers like `ipvsadm -Ln` (--stats/--rate for counters)'
complete -c lbctl -n "__fish_lbctl_using_subcommand lb; and __fish_seen_subcommand_from help" -f -a "save" -d 'Print the IPVS table as `ipvsadm -S -n` rules (for `lb restore` or `ipvsadm -R`)'
complete -c lbctl -n "__fish_lbctl_using_subcommand lb; and __fish_seen_subcommand_from help" -f -a "restore" -d 'Apply ipvsadm rules (`lb save` / `ipvsadm -S` output): all checked against the current table before the first change, undone on failure'
complete -c lbctl -n "__fish_lbctl_using_subcommand lb; and __fish_seen_subcommand_from help" -f -a "apply" -d 'Converge IPVS to an LB file (see profiles/lb-example.toml): only what differs is changed, undone on failure, verified'
complete -c lbctl -n "__fish_lbctl_using_subcommand lb; and __fish_seen_subcommand_from help" -f -a "run" -d 'Run the balancer daemon: own the VIPs, program the data path (IPVS, or nftables with Maglev where IPVS is missing), health-check backends and take failed ones out'
complete -c lbctl -n "__fish_lbctl_using_subcommand lb; and __fish_seen_subcommand_from help" -f -a "status" -d 'Show what `lb run` is doing: backends, state, last check, weight (exit 1 if a backend is not up, 2 if no daemon runs)'
complete -c lbctl -n "__fish_lbctl_using_subcommand lb; and __fish_seen_subcommand_from help" -f -a "maglev" -d 'Maglev table balance, and the disruption of removing or adding a backend, for a table size M (to pick M)'
complete -c lbctl -n "__fish_lbctl_using_subcommand lb; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c lbctl -n "__fish_lbctl_using_subcommand doctor" -l role -d 'What this host is' -r -f -a "backend\t'A real server behind a DSR balancer'
lb\t'The balancer itself'"
complete -c lbctl -n "__fish_lbctl_using_subcommand doctor" -l vip -d 'A VIP to check, optionally with a port (`198.18.0.100:80`, `[2001:db8::100]:80`). Repeatable' -r
complete -c lbctl -n "__fish_lbctl_using_subcommand doctor" -s f -l file -d 'Take VIPs, ports and ARP mode from this profile' -r -F
complete -c lbctl -n "__fish_lbctl_using_subcommand doctor" -l client -d 'A client address to check the return path and rp_filter against' -r
complete -c lbctl -n "__fish_lbctl_using_subcommand doctor" -l balancer -d 'The balancer\'s address (checks L2 adjacency)' -r
complete -c lbctl -n "__fish_lbctl_using_subcommand doctor" -l capture -d 'Also capture traffic for the VIPs for SECS seconds and judge it' -r
complete -c lbctl -n "__fish_lbctl_using_subcommand doctor" -l netns -d 'Run inside the named network namespace (as created by `ip netns add NAME`)' -r
complete -c lbctl -n "__fish_lbctl_using_subcommand doctor" -l json -d 'Machine-readable JSON output on stdout'
complete -c lbctl -n "__fish_lbctl_using_subcommand doctor" -s v -l verbose -d 'More detail (repeat for more)'
complete -c lbctl -n "__fish_lbctl_using_subcommand doctor" -s q -l quiet -d 'Only errors'
complete -c lbctl -n "__fish_lbctl_using_subcommand doctor" -s n -l dry-run -d 'Print the plan as `ip`/`nft`/`sysctl` commands and change nothing'
complete -c lbctl -n "__fish_lbctl_using_subcommand doctor" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c lbctl -n "__fish_lbctl_using_subcommand doctor" -s V -l version -d 'Print version'
complete -c lbctl -n "__fish_lbctl_using_subcommand firewall; and not __fish_seen_subcommand_from check help" -l netns -d 'Run inside the named network namespace (as created by `ip netns add NAME`)' -r
complete -c lbctl -n "__fish_lbctl_using_subcommand firewall; and not __fish_seen_subcommand_from check help" -l json -d 'Machine-readable JSON output on stdout'
complete -c lbctl -n "__fish_lbctl_using_subcommand firewall; and not __fish_seen_subcommand_from check help" -s v -l verbose -d 'More detail (repeat for more)'
complete -c lbctl -n "__fish_lbctl_using_subcommand firewall; and not __fish_seen_subcommand_from check help" -s q -l quiet -d 'Only errors'
complete -c lbctl -n "__fish_lbctl_using_subcommand firewall; and not __fish_seen_subcommand_from check help" -s n -l dry-run -d 'Print the plan as `ip`/`nft`/`sysctl` commands and change nothing'
complete -c lbctl -n "__fish_lbctl_using_subcommand firewall; and not __fish_seen_subcommand_from check help" -s h -l help -d 'Print help'
complete -c lbctl -n "__fish_lbctl_using_subcommand firewall; and not __fish_seen_subcommand_from check help" -s V -l version -d 'Print version'
complete -c lbctl -n "__fish_lbctl_using_subcommand firewall; and not __fish_seen_subcommand_from check help" -f -a "check" -d 'The verdict for one flow: the client\'s SYN to VIP:PORT, and the SYN-ACK back'
complete -c lbctl -n "__fish_lbctl_using_subcommand firewall; and not __fish_seen_subcommand_from check help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c lbctl -n "__fish_lbctl_using_subcommand firewall; and __fish_seen_subcommand_from check" -l vip -d 'The service: `198.18.0.100:80` or `[2001:db8::100]:80`' -r
complete -c lbctl -n "__fish_lbctl_using_subcommand firewall; and __fish_seen_subcommand_from check" -l client -d 'The client address the packet comes from' -r
complete -c lbctl -n "__fish_lbctl_using_subcommand firewall; and __fish_seen_subcommand_from check" -l iface -d 'Interface the client\'s packets arrive on (default: the route towards the client)' -r
complete -c lbctl -n "__fish_lbctl_using_subcommand firewall; and __fish_seen_subcommand_from check" -l proto -d 'Transport protocol of the service' -r -f -a "tcp\t''
udp\t''"
complete -c lbctl -n "__fish_lbctl_using_subcommand firewall; and __fish_seen_subcommand_from check" -l netns -d 'Run inside the named network namespace (as created by `ip netns add NAME`)' -r
complete -c lbctl -n "__fish_lbctl_using_subcommand firewall; and __fish_seen_subcommand_from check" -l json -d 'Machine-readable JSON output on stdout'
complete -c lbctl -n "__fish_lbctl_using_subcommand firewall; and __fish_seen_subcommand_from check" -s v -l verbose -d 'More detail (repeat for more)'
complete -c lbctl -n "__fish_lbctl_using_subcommand firewall; and __fish_seen_subcommand_from check" -s q -l quiet -d 'Only errors'
complete -c lbctl -n "__fish_lbctl_using_subcommand firewall; and __fish_seen_subcommand_from check" -s n -l dry-run -d 'Print the plan as `ip`/`nft`/`sysctl` commands and change nothing'
complete -c lbctl -n "__fish_lbctl_using_subcommand firewall; and __fish_seen_subcommand_from check" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c lbctl -n "__fish_lbctl_using_subcommand firewall; and __fish_seen_subcommand_from check" -s V -l version -d 'Print version'
complete -c lbctl -n "__fish_lbctl_using_subcommand firewall; and __fish_seen_subcommand_from help" -f -a "check" -d 'The verdict for one flow: the client\'s SYN to VIP:PORT, and the SYN-ACK back'
complete -c lbctl -n "__fish_lbctl_using_subcommand firewall; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c lbctl -n "__fish_lbctl_using_subcommand capture" -s i -l iface -d 'Interface to capture on, or `any`' -r
complete -c lbctl -n "__fish_lbctl_using_subcommand capture" -l vip -d 'Only packets to or from this VIP (and ARP about it)' -r
complete -c lbctl -n "__fish_lbctl_using_subcommand capture" -l host -d 'Only packets to or from this host' -r
complete -c lbctl -n "__fish_lbctl_using_subcommand capture" -s c -l count -d 'Stop after N packets' -r
complete -c lbctl -n "__fish_lbctl_using_subcommand capture" -l seconds -d 'Stop after S seconds' -r
complete -c lbctl -n "__fish_lbctl_using_subcommand capture" -s w -l write -d 'Write packets to a pcap file (tcpdump/Wireshark can read it)' -r -F
complete -c lbctl -n "__fish_lbctl_using_subcommand capture" -s r -l read -d 'Read packets from a pcap file instead of capturing' -r -F
complete -c lbctl -n "__fish_lbctl_using_subcommand capture" -l netns -d 'Run inside the named network namespace (as created by `ip netns add NAME`)' -r
complete -c lbctl -n "__fish_lbctl_using_subcommand capture" -l json -d 'Machine-readable JSON output on stdout'
complete -c lbctl -n "__fish_lbctl_using_subcommand capture" -s v -l verbose -d 'More detail (repeat for more)'
complete -c lbctl -n "__fish_lbctl_using_subcommand capture" -s q -l quiet -d 'Only errors'
complete -c lbctl -n "__fish_lbctl_using_subcommand capture" -s n -l dry-run -d 'Print the plan as `ip`/`nft`/`sysctl` commands and change nothing'
complete -c lbctl -n "__fish_lbctl_using_subcommand capture" -s h -l help -d 'Print help'
complete -c lbctl -n "__fish_lbctl_using_subcommand capture" -s V -l version -d 'Print version'
complete -c lbctl -n "__fish_lbctl_using_subcommand lab; and not __fish_seen_subcommand_from up demo traffic exec status down break serve help" -l netns -d 'Run inside the named network namespace (as created by `ip netns add NAME`)' -r
complete -c lbctl -n "__fish_lbctl_using_subcommand lab; and not __fish_seen_subcommand_from up demo traffic exec status down break serve help" -l json -d 'Machine-readable JSON output on stdout'
complete -c lbctl -n "__fish_lbctl_using_subcommand lab; and not __fish_seen_subcommand_from up demo traffic exec status down break serve help" -s v -l verbose -d 'More detail (repeat for more)'
complete -c lbctl -n "__fish_lbctl_using_subcommand lab; and not __fish_seen_subcommand_from up demo traffic exec status down break serve help" -s q -l quiet -d 'Only errors'
complete -c lbctl -n "__fish_lbctl_using_subcommand lab; and not __fish_seen_subcommand_from up demo traffic exec status down break serve help" -s n -l dry-run -d 'Print the plan as `ip`/`nft`/`sysctl` commands and change nothing'
complete -c lbctl -n "__fish_lbctl_using_subcommand lab; and not __fish_seen_subcommand_from up demo traffic exec status down break serve help" -s h -l help -d 'Print help'
complete -c lbctl -n "__fish_lbctl_using_subcommand lab; and not __fish_seen_subcommand_from up demo traffic exec status down break serve help" -s V -l version -d 'Print version'
complete -c lbctl -n "__fish_lbctl_using_subcommand lab; and not __fish_seen_subcommand_from up demo traffic exec status down break serve help" -f -a "up" -d 'Build a lab: a switch, a client, a balancer (`lbctl lb run`) and K backends configured by lbctl, each serving a page that names it'
complete -c lbctl -n "__fish_lbctl_using_subcommand lab; and not __fish_seen_subcommand_from up demo traffic exec status down break serve help" -f -a "demo" -d 'The whole story in a few seconds: up, requests through the VIP, where they went and that replies bypassed the balancer, doctor on a backend, down. Ctrl-C cleans up too'
complete -c lbctl -n "__fish_lbctl_using_subcommand lab; and not __fish_seen_subcommand_from up demo traffic exec status down break serve help" -f -a "traffic" -d 'Send HTTP requests from the client to the VIP and show which backend answered and which way the replies went'
complete -c lbctl -n "__fish_lbctl_using_subcommand lab; and not __fish_seen_subcommand_from up demo traffic exec status down break serve help" -f -a "exec" -d 'Run a command inside a lab node\'s namespace (exit code passed through)'
complete -c lbctl -n "__fish_lbctl_using_subcommand lab; and not __fish_seen_subcommand_from up demo traffic exec status down break serve help" -f -a "status" -d 'Show labs: nodes, namespaces, addresses, processes, injected faults (exit 1 if something recorded is missing or dead)'
complete -c lbctl -n "__fish_lbctl_using_subcommand lab; and not __fish_seen_subcommand_from up demo traffic exec status down break serve help" -f -a "down" -d 'Remove a lab: stop its processes (by recorded PID), delete its namespaces'
complete -c lbctl -n "__fish_lbctl_using_subcommand lab; and not __fish_seen_subcommand_from up demo traffic exec status down break serve help" -f -a "break" -d 'Inject a classic DSR fault into a backend, then watch `lbctl doctor` find it'
complete -c lbctl -n "__fish_lbctl_using_subcommand lab; and not __fish_seen_subcommand_from up demo traffic exec status down break serve help" -f -a "serve" -d 'The lab\'s built-in HTTP server: answers `GET /` with its name (started by `lab up`)'
complete -c lbctl -n "__fish_lbctl_using_subcommand lab; and not __fish_seen_subcommand_from up demo traffic exec status down break serve help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c lbctl -n "__fish_lbctl_using_subcommand lab; and __fish_seen_subcommand_from up" -l name -d 'The lab (namespaces are named lbl-NAME-NODE)' -r
complete -c lbctl -n "__fish_lbctl_using_subcommand lab; and __fish_seen_subcommand_from up" -l backends -d 'Number of backends (1-9)' -r
complete -c lbctl -n "__fish_lbctl_using_subcommand lab; and __fish_seen_subcommand_from up" -l profile -d 'Configure the backends with this profile instead of `arp suppress` + `vip add`; placeholders {{vip}} {{rip}} {{node}} {{gateway}} {{port}} {{iface}} (and {{vip6}} {{rip6}} {{gateway6}} with --ipv6) are filled in per backend' -r -F
complete -c lbctl -n "__fish_lbctl_using_subcommand lab; and __fish_seen_subcommand_from up" -l engine -d 'The balancer\'s engine' -r -f -a "auto\t'IPVS when the kernel has it, else nftables'
ipvs\t'Kernel IPVS in direct-routing mode'
nft\t'An nftables netdev ingress chain rewriting MACs'"
complete -c lbctl -n "__fish_lbctl_using_subcommand lab; and __fish_seen_subcommand_from up" -l netns -d 'Run inside the named network namespace (as created by `ip netns add NAME`)' -r
complete -c lbctl -n "__fish_lbctl_using_subcommand lab; and __fish_seen_subcommand_from up" -l ipv6 -d 'Also IPv6: 2001:db8::/64 addresses and the VIP 2001:db8::100'
complete -c lbctl -n "__fish_lbctl_using_subcommand lab; and __fish_seen_subcommand_from up" -l no-balancer -d 'Do not start `lbctl lb run` (bring your own balancer in the lb namespace)'
complete -c lbctl -n "__fish_lbctl_using_subcommand lab; and __fish_seen_subcommand_from up" -l json -d 'Machine-readable JSON output on stdout'
complete -c lbctl -n "__fish_lbctl_using_subcommand lab; and __fish_seen_subcommand_from up" -s v -l verbose -d 'More detail (repeat for more)'
complete -c lbctl -n "__fish_lbctl_using_subcommand lab; and __fish_seen_subcommand_from up" -s q -l quiet -d 'Only errors'
complete -c lbctl -n "__fish_lbctl_using_subcommand lab; and __fish_seen_subcommand_from up" -s n -l dry-run -d 'Print the plan as `ip`/`nft`/`sysctl` commands and change nothing'
complete -c lbctl -n "__fish_lbctl_using_subcommand lab; and __fish_seen_subcommand_from up" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c lbctl -n "__fish_lbctl_using_subcommand lab; and __fish_seen_subcommand_from up" -s V -l version -d 'Print version'
complete -c lbctl -n "__fish_lbctl_using_subcommand lab; and __fish_seen_subcommand_from demo" -l name -d 'The demo lab\'s name (removed again at the end)' -r
complete -c lbctl -n "__fish_lbctl_using_subcommand lab; and __fish_seen_subcommand_from demo" -l requests -d 'Requests to send (each on a new connection)' -r
complete -c lbctl -n "__fish_lbctl_using_subcommand lab; and __fish_seen_subcommand_from demo" -l engine -d 'The balancer\'s engine' -r -f -a "auto\t'IPVS when the kernel has it, else nftables'
ipvs\t'Kernel IPVS in direct-routing mode'
nft\t'An nftables netdev ingress chain rewriting MACs'"
complete -c lbctl -n "__fish_lbctl_using_subcommand lab; and __fish_seen_subcommand_from demo" -l netns -d 'Run inside the named network namespace (as created by `ip netns add NAME`)' -r
complete -c lbctl -n "__fish_lbctl_using_subcommand lab; and __fish_seen_subcommand_from demo" -l json -d 'Machine-readable JSON output on stdout'
complete -c lbctl -n "__fish_lbctl_using_subcommand lab; and __fish_seen_subcommand_from demo" -s v -l verbose -d 'More detail (repeat for more)'
complete -c lbctl -n "__fish_lbctl_using_subcommand lab; and __fish_seen_subcommand_from demo" -s q -l quiet -d 'Only errors'
complete -c lbctl -n "__fish_lbctl_using_subcommand lab; and __fish_seen_subcommand_from demo" -s n -l dry-run -d 'Print the plan as `ip`/`nft`/`sysctl` commands and change nothing'
complete -c lbctl -n "__fish_lbctl_using_subcommand lab; and __fish_seen_subcommand_from demo" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c lbctl -n "__fish_lbctl_using_subcommand lab; and __fish_seen_subcommand_from demo" -s V -l version -d 'Print version'
complete -c lbctl -n "__fish_lbctl_using_subcommand lab; and __fish_seen_subcommand_from traffic" -l name -d 'The lab (namespaces are named lbl-NAME-NODE)' -r
complete -c lbctl -n "__fish_lbctl_using_subcommand lab; and __fish_seen_subcommand_from traffic" -l requests -d 'Requests to send (each on a new connection)' -r
complete -c lbctl -n "__fish_lbctl_using_subcommand lab; and __fish_seen_subcommand_from traffic" -l netns -d 'Run inside the named network namespace (as created by `ip netns add NAME`)' -r
complete -c lbctl -n "__fish_lbctl_using_subcommand lab; and __fish_seen_subcommand_from traffic" -l ipv6 -d 'Use the IPv6 VIP (the lab must be up with --ipv6)'
complete -c lbctl -n "__fish_lbctl_using_subcommand lab; and __fish_seen_subcommand_from traffic" -l json -d 'Machine-readable JSON output on stdout'
complete -c lbctl -n "__fish_lbctl_using_subcommand lab; and __fish_seen_subcommand_from traffic" -s v -l verbose -d 'More detail (repeat for more)'
complete -c lbctl -n "__fish_lbctl_using_subcommand lab; and __fish_seen_subcommand_from traffic" -s q -l quiet -d 'Only errors'
complete -c lbctl -n "__fish_lbctl_using_subcommand lab; and __fish_seen_subcommand_from traffic" -s n -l dry-run -d 'Print the plan as `ip`/`nft`/`sysctl` commands and change nothing'
complete -c lbctl -n "__fish_lbctl_using_subcommand lab; and __fish_seen_subcommand_from traffic" -s h -l help -d 'Print help'
complete -c lbctl -n "__fish_lbctl_using_subcommand lab; and __fish_seen_subcommand_from traffic" -s V -l version -d 'Print version'
complete -c lbctl -n "__fish_lbctl_using_subcommand lab; and __fish_seen_subcommand_from exec" -l name -d 'The lab (namespaces are named lbl-NAME-NODE)' -r
complete -c lbctl -n "__fish_lbctl_using_subcommand lab; and __fish_seen_subcommand_from exec" -l netns -d 'Run inside the named network namespace (as created by `ip netns add NAME`)' -r
complete -c lbctl -n "__fish_lbctl_using_subcommand lab; and __fish_seen_subcommand_from exec" -l json -d 'Machine-readable JSON output on stdout'
complete -c lbctl -n "__fish_lbctl_using_subcommand lab; and __fish_seen_subcommand_from exec" -s v -l verbose -d 'More detail (repeat for more)'
complete -c lbctl -n "__fish_lbctl_using_subcommand lab; and __fish_seen_subcommand_from exec" -s q -l quiet -d 'Only errors'
complete -c lbctl -n "__fish_lbctl_using_subcommand lab; and __fish_seen_subcommand_from exec" -s n -l dry-run -d 'Print the plan as `ip`/`nft`/`sysctl` commands and change nothing'
complete -c lbctl -n "__fish_lbctl_using_subcommand lab; and __fish_seen_subcommand_from exec" -s h -l help -d 'Print help'
complete -c lbctl -n "__fish_lbctl_using_subcommand lab; and __fish_seen_subcommand_from exec" -s V -l version -d 'Print version'
complete -c lbctl -n "__fish_lbctl_using_subcommand lab; and __fish_seen_subcommand_from status" -l name -d 'Only this lab (default: every lab)' -r
complete -c lbctl -n "__fish_lbctl_using_subcommand lab; and __fish_seen_subcommand_from status" -l netns -d 'Run inside the named network namespace (as created by `ip netns add NAME`)' -r
complete -c lbctl -n "__fish_lbctl_using_subcommand lab; and __fish_seen_subcommand_from status" -l json -d 'Machine-readable JSON output on stdout'
complete -c lbctl -n "__fish_lbctl_using_subcommand lab; and __fish_seen_subcommand_from status" -s v -l verbose -d 'More detail (repeat for more)'
complete -c lbctl -n "__fish_lbctl_using_subcommand lab; and __fish_seen_subcommand_from status" -s q -l quiet -d 'Only errors'
complete -c lbctl -n "__fish_lbctl_using_subcommand lab; and __fish_seen_subcommand_from status" -s n -l dry-run -d 'Print the plan as `ip`/`nft`/`sysctl` commands and change nothing'
complete -c lbctl -n "__fish_lbctl_using_subcommand lab; and __fish_seen_subcommand_from status" -s h -l help -d 'Print help'
complete -c lbctl -n "__fish_lbctl_using_subcommand lab; and __fish_seen_subcommand_from status" -s V -l version -d 'Print version'
complete -c lbctl -n "__fish_lbctl_using_subcommand lab; and __fish_seen_subcommand_from down" -l name -d 'The lab to remove' -r
complete -c lbctl -n "__fish_lbctl_using_subcommand lab; and __fish_seen_subcommand_from down" -l netns -d 'Run inside the named network namespace (as created by `ip netns add NAME`)' -r
complete -c lbctl -n "__fish_lbctl_using_subcommand lab; and __fish_seen_subcommand_from down" -l all -d 'Remove every recorded lab'
complete -c lbctl -n "__fish_lbctl_using_subcommand lab; and __fish_seen_subcommand_from down" -l json -d 'Machine-readable JSON output on stdout'
complete -c lbctl -n "__fish_lbctl_using_subcommand lab; and __fish_seen_subcommand_from down" -s v -l verbose -d 'More detail (repeat for more)'
complete -c lbctl -n "__fish_lbctl_using_subcommand lab; and __fish_seen_subcommand_from down" -s q -l quiet -d 'Only errors'
complete -c lbctl -n "__fish_lbctl_using_subcommand lab; and __fish_seen_subcommand_from down" -s n -l dry-run -d 'Print the plan as `ip`/`nft`/`sysctl` commands and change nothing'
complete -c lbctl -n "__fish_lbctl_using_subcommand lab; and __fish_seen_subcommand_from down" -s h -l help -d 'Print help'
complete -c lbctl -n "__fish_lbctl_using_subcommand lab; and __fish_seen_subcommand_from down" -s V -l version -d 'Print version'
complete -c lbctl -n "__fish_lbctl_using_subcommand lab; and __fish_seen_subcommand_from break" -l name -d 'The lab (namespaces are named lbl-NAME-NODE)' -r
complete -c lbctl -n "__fish_lbctl_using_subcommand lab; and __fish_seen_subcommand_from break" -l netns -d 'Run inside the named network namespace (as created by `ip netns add NAME`)' -r
complete -c lbctl -n "__fish_lbctl_using_subcommand lab; and __fish_seen_subcommand_from break" -l json -d 'Machine-readable JSON output on stdout'
complete -c lbctl -n "__fish_lbctl_using_subcommand lab; and __fish_seen_subcommand_from break" -s v -l verbose -d 'More detail (repeat for more)'
complete -c lbctl -n "__fish_lbctl_using_subcommand lab; and __fish_seen_subcommand_from break" -s q -l quiet -d 'Only errors'
complete -c lbctl -n "__fish_lbctl_using_subcommand lab; and __fish_seen_subcommand_from break" -s n -l dry-run -d 'Print the plan as `ip`/`nft`/`sysctl` commands and change nothing'
complete -c lbctl -n "__fish_lbctl_using_subcommand lab; and __fish_seen_subcommand_from break" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c lbctl -n "__fish_lbctl_using_subcommand lab; and __fish_seen_subcommand_from break" -s V -l version -d 'Print version'
complete -c lbctl -n "__fish_lbctl_using_subcommand lab; and __fish_seen_subcommand_from serve" -l name -d 'What `GET /` answers (the backend\'s name)' -r
complete -c lbctl -n "__fish_lbctl_using_subcommand lab; and __fish_seen_subcommand_from serve" -l port -d 'TCP port, on every address (`[::]` dual-stack, or 0.0.0.0)' -r
complete -c lbctl -n "__fish_lbctl_using_subcommand lab; and __fish_seen_subcommand_from serve" -l netns -d 'Run inside the named network namespace (as created by `ip netns add NAME`)' -r
complete -c lbctl -n "__fish_lbctl_using_subcommand lab; and __fish_seen_subcommand_from serve" -l json -d 'Machine-readable JSON output on stdout'
complete -c lbctl -n "__fish_lbctl_using_subcommand lab; and __fish_seen_subcommand_from serve" -s v -l verbose -d 'More detail (repeat for more)'
complete -c lbctl -n "__fish_lbctl_using_subcommand lab; and __fish_seen_subcommand_from serve" -s q -l quiet -d 'Only errors'
complete -c lbctl -n "__fish_lbctl_using_subcommand lab; and __fish_seen_subcommand_from serve" -s n -l dry-run -d 'Print the plan as `ip`/`nft`/`sysctl` commands and change nothing'
complete -c lbctl -n "__fish_lbctl_using_subcommand lab; and __fish_seen_subcommand_from serve" -s h -l help -d 'Print help'
complete -c lbctl -n "__fish_lbctl_using_subcommand lab; and __fish_seen_subcommand_from serve" -s V -l version -d 'Print version'
complete -c lbctl -n "__fish_lbctl_using_subcommand lab; and __fish_seen_subcommand_from help" -f -a "up" -d 'Build a lab: a switch, a client, a balancer (`lbctl lb run`) and K backends configured by lbctl, each serving a page that names it'
complete -c lbctl -n "__fish_lbctl_using_subcommand lab; and __fish_seen_subcommand_from help" -f -a "demo" -d 'The whole story in a few seconds: up, requests through the VIP, where they went and that replies bypassed the balancer, doctor on a backend, down. Ctrl-C cleans up too'
complete -c lbctl -n "__fish_lbctl_using_subcommand lab; and __fish_seen_subcommand_from help" -f -a "traffic" -d 'Send HTTP requests from the client to the VIP and show which backend answered and which way the replies went'
complete -c lbctl -n "__fish_lbctl_using_subcommand lab; and __fish_seen_subcommand_from help" -f -a "exec" -d 'Run a command inside a lab node\'s namespace (exit code passed through)'
complete -c lbctl -n "__fish_lbctl_using_subcommand lab; and __fish_seen_subcommand_from help" -f -a "status" -d 'Show labs: nodes, namespaces, addresses, processes, injected faults (exit 1 if something recorded is missing or dead)'
complete -c lbctl -n "__fish_lbctl_using_subcommand lab; and __fish_seen_subcommand_from help" -f -a "down" -d 'Remove a lab: stop its processes (by recorded PID), delete its namespaces'
complete -c lbctl -n "__fish_lbctl_using_subcommand lab; and __fish_seen_subcommand_from help" -f -a "break" -d 'Inject a classic DSR fault into a backend, then watch `lbctl doctor` find it'
complete -c lbctl -n "__fish_lbctl_using_subcommand lab; and __fish_seen_subcommand_from help" -f -a "serve" -d 'The lab\'s built-in HTTP server: answers `GET /` with its name (started by `lab up`)'
complete -c lbctl -n "__fish_lbctl_using_subcommand lab; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c lbctl -n "__fish_lbctl_using_subcommand gen; and not __fish_seen_subcommand_from completions man help" -l netns -d 'Run inside the named network namespace (as created by `ip netns add NAME`)' -r
complete -c lbctl -n "__fish_lbctl_using_subcommand gen; and not __fish_seen_subcommand_from completions man help" -l json -d 'Machine-readable JSON output on stdout'
complete -c lbctl -n "__fish_lbctl_using_subcommand gen; and not __fish_seen_subcommand_from completions man help" -s v -l verbose -d 'More detail (repeat for more)'
complete -c lbctl -n "__fish_lbctl_using_subcommand gen; and not __fish_seen_subcommand_from completions man help" -s q -l quiet -d 'Only errors'
complete -c lbctl -n "__fish_lbctl_using_subcommand gen; and not __fish_seen_subcommand_from completions man help" -s n -l dry-run -d 'Print the plan as `ip`/`nft`/`sysctl` commands and change nothing'
complete -c lbctl -n "__fish_lbctl_using_subcommand gen; and not __fish_seen_subcommand_from completions man help" -s h -l help -d 'Print help'
complete -c lbctl -n "__fish_lbctl_using_subcommand gen; and not __fish_seen_subcommand_from completions man help" -s V -l version -d 'Print version'
complete -c lbctl -n "__fish_lbctl_using_subcommand gen; and not __fish_seen_subcommand_from completions man help" -f -a "completions" -d 'Print shell completions'
complete -c lbctl -n "__fish_lbctl_using_subcommand gen; and not __fish_seen_subcommand_from completions man help" -f -a "man" -d 'Write man pages (lbctl.1, lbctl-vip.1, …) into DIR'
complete -c lbctl -n "__fish_lbctl_using_subcommand gen; and not __fish_seen_subcommand_from completions man help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c lbctl -n "__fish_lbctl_using_subcommand gen; and __fish_seen_subcommand_from completions" -l netns -d 'Run inside the named network namespace (as created by `ip netns add NAME`)' -r
complete -c lbctl -n "__fish_lbctl_using_subcommand gen; and __fish_seen_subcommand_from completions" -l json -d 'Machine-readable JSON output on stdout'
complete -c lbctl -n "__fish_lbctl_using_subcommand gen; and __fish_seen_subcommand_from completions" -s v -l verbose -d 'More detail (repeat for more)'
complete -c lbctl -n "__fish_lbctl_using_subcommand gen; and __fish_seen_subcommand_from completions" -s q -l quiet -d 'Only errors'
complete -c lbctl -n "__fish_lbctl_using_subcommand gen; and __fish_seen_subcommand_from completions" -s n -l dry-run -d 'Print the plan as `ip`/`nft`/`sysctl` commands and change nothing'
complete -c lbctl -n "__fish_lbctl_using_subcommand gen; and __fish_seen_subcommand_from completions" -s h -l help -d 'Print help'
complete -c lbctl -n "__fish_lbctl_using_subcommand gen; and __fish_seen_subcommand_from completions" -s V -l version -d 'Print version'
complete -c lbctl -n "__fish_lbctl_using_subcommand gen; and __fish_seen_subcommand_from man" -l netns -d 'Run inside the named network namespace (as created by `ip netns add NAME`)' -r
complete -c lbctl -n "__fish_lbctl_using_subcommand gen; and __fish_seen_subcommand_from man" -l json -d 'Machine-readable JSON output on stdout'
complete -c lbctl -n "__fish_lbctl_using_subcommand gen; and __fish_seen_subcommand_from man" -s v -l verbose -d 'More detail (repeat for more)'
complete -c lbctl -n "__fish_lbctl_using_subcommand gen; and __fish_seen_subcommand_from man" -s q -l quiet -d 'Only errors'
complete -c lbctl -n "__fish_lbctl_using_subcommand gen; and __fish_seen_subcommand_from man" -s n -l dry-run -d 'Print the plan as `ip`/`nft`/`sysctl` commands and change nothing'
complete -c lbctl -n "__fish_lbctl_using_subcommand gen; and __fish_seen_subcommand_from man" -s h -l help -d 'Print help'
complete -c lbctl -n "__fish_lbctl_using_subcommand gen; and __fish_seen_subcommand_from man" -s V -l version -d 'Print version'
complete -c lbctl -n "__fish_lbctl_using_subcommand gen; and __fish_seen_subcommand_from help" -f -a "completions" -d 'Print shell completions'
complete -c lbctl -n "__fish_lbctl_using_subcommand gen; and __fish_seen_subcommand_from help" -f -a "man" -d 'Write man pages (lbctl.1, lbctl-vip.1, …) into DIR'
complete -c lbctl -n "__fish_lbctl_using_subcommand gen; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c lbctl -n "__fish_lbctl_using_subcommand help; and not __fish_seen_subcommand_from vip arp route rpfilter plan apply status watch down lb doctor firewall capture lab gen help" -f -a "vip" -d 'Manage VIPs on this backend (a /32 or /128 on `lo` by default)'
complete -c lbctl -n "__fish_lbctl_using_subcommand help; and not __fish_seen_subcommand_from vip arp route rpfilter plan apply status watch down lb doctor firewall capture lab gen help" -f -a "arp" -d 'Keep this backend from answering ARP for its VIPs'
complete -c lbctl -n "__fish_lbctl_using_subcommand help; and not __fish_seen_subcommand_from vip arp route rpfilter plan apply status watch down lb doctor firewall capture lab gen help" -f -a "route" -d 'Source-based policy routing so replies from a VIP leave by the right gateway'
complete -c lbctl -n "__fish_lbctl_using_subcommand help; and not __fish_seen_subcommand_from vip arp route rpfilter plan apply status watch down lb doctor firewall capture lab gen help" -f -a "rpfilter" -d 'Report and fix reverse-path filtering (rp_filter) for DSR traffic'
complete -c lbctl -n "__fish_lbctl_using_subcommand help; and not __fish_seen_subcommand_from vip arp route rpfilter plan apply status watch down lb doctor firewall capture lab gen help" -f -a "plan" -d 'Show what applying a profile would change (exit 1 if anything)'
complete -c lbctl -n "__fish_lbctl_using_subcommand help; and not __fish_seen_subcommand_from vip arp route rpfilter plan apply status watch down lb doctor firewall capture lab gen help" -f -a "apply" -d 'Converge this host to a profile (all or nothing: a failure rolls back)'
complete -c lbctl -n "__fish_lbctl_using_subcommand help; and not __fish_seen_subcommand_from vip arp route rpfilter plan apply status watch down lb doctor firewall capture lab gen help" -f -a "status" -d 'Show what lbctl manages and any drift (exit 1 on drift)'
complete -c lbctl -n "__fish_lbctl_using_subcommand help; and not __fish_seen_subcommand_from vip arp route rpfilter plan apply status watch down lb doctor firewall capture lab gen help" -f -a "watch" -d 'Keep what lbctl owns converged: re-apply drift (a flushed nft ruleset, a deleted VIP, a reset sysctl) within a second, logging each repair. Runs until SIGTERM/SIGINT'
complete -c lbctl -n "__fish_lbctl_using_subcommand help; and not __fish_seen_subcommand_from vip arp route rpfilter plan apply status watch down lb doctor firewall capture lab gen help" -f -a "down" -d 'Remove what lbctl added (for one profile, or everything) and restore recorded sysctls'
complete -c lbctl -n "__fish_lbctl_using_subcommand help; and not __fish_seen_subcommand_from vip arp route rpfilter plan apply status watch down lb doctor firewall capture lab gen help" -f -a "lb" -d 'The balancer: kernel IPVS in direct-routing mode'
complete -c lbctl -n "__fish_lbctl_using_subcommand help; and not __fish_seen_subcommand_from vip arp route rpfilter plan apply status watch down lb doctor firewall capture lab gen help" -f -a "doctor" -d 'Check this host\'s DSR set-up and say what is wrong and how to fix it'
complete -c lbctl -n "__fish_lbctl_using_subcommand help; and not __fish_seen_subcommand_from vip arp route rpfilter plan apply status watch down lb doctor firewall capture lab gen help" -f -a "firewall" -d 'Would the firewall pass a DSR flow? The nftables verdict (iptables-nft included) for a client\'s SYN to VIP:PORT and the SYN-ACK back, with the dropping rule and a fix'
complete -c lbctl -n "__fish_lbctl_using_subcommand help; and not __fish_seen_subcommand_from vip arp route rpfilter plan apply status watch down lb doctor firewall capture lab gen help" -f -a "capture" -d 'tcpdump-like capture on raw AF_PACKET sockets (no libpcap), with MACs and direction'
complete -c lbctl -n "__fish_lbctl_using_subcommand help; and not __fish_seen_subcommand_from vip arp route rpfilter plan apply status watch down lb doctor firewall capture lab gen help" -f -a "lab" -d 'A DSR sandbox in network namespaces: switch, client, balancer and backends, built with lbctl itself (`lbctl lab demo` shows it all in a few seconds)'
complete -c lbctl -n "__fish_lbctl_using_subcommand help; and not __fish_seen_subcommand_from vip arp route rpfilter plan apply status watch down lb doctor firewall capture lab gen help" -f -a "gen" -d 'Generate shell completions or man pages from this command line definition'
complete -c lbctl -n "__fish_lbctl_using_subcommand help; and not __fish_seen_subcommand_from vip arp route rpfilter plan apply status watch down lb doctor firewall capture lab gen help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c lbctl -n "__fish_lbctl_using_subcommand help; and __fish_seen_subcommand_from vip" -f -a "add" -d 'Add VIP as /32 (/128, nodad) on DEV. A no-op when lbctl already added it'
complete -c lbctl -n "__fish_lbctl_using_subcommand help; and __fish_seen_subcommand_from vip" -f -a "del" -d 'Delete a VIP lbctl added (`--force` for one it did not add)'
complete -c lbctl -n "__fish_lbctl_using_subcommand help; and __fish_seen_subcommand_from vip" -f -a "list" -d 'List host-prefix addresses on `lo` and every lbctl VIP, owned or foreign'
complete -c lbctl -n "__fish_lbctl_using_subcommand help; and __fish_seen_subcommand_from arp" -f -a "suppress" -d 'Stop answering ARP for VIP (do this before `vip add`)'
complete -c lbctl -n "__fish_lbctl_using_subcommand help; and __fish_seen_subcommand_from arp" -f -a "restore" -d 'Undo `suppress` for VIP, restoring exactly the prior state'
complete -c lbctl -n "__fish_lbctl_using_subcommand help; and __fish_seen_subcommand_from arp" -f -a "status" -d 'Show the suppression lbctl manages and the effective ARP sysctls'
complete -c lbctl -n "__fish_lbctl_using_subcommand help; and __fish_seen_subcommand_from route" -f -a "add" -d '`ip rule from VIP lookup T` + default via GW + IF\'s connected routes, all in table T'
complete -c lbctl -n "__fish_lbctl_using_subcommand help; and __fish_seen_subcommand_from route" -f -a "del" -d 'Remove the policy routing lbctl added for VIP'
complete -c lbctl -n "__fish_lbctl_using_subcommand help; and __fish_seen_subcommand_from route" -f -a "list" -d 'Show the policy routing lbctl manages'
complete -c lbctl -n "__fish_lbctl_using_subcommand help; and __fish_seen_subcommand_from rpfilter" -f -a "check" -d 'Report rp_filter (all, default, each interface, effective = max(all, iface))'
complete -c lbctl -n "__fish_lbctl_using_subcommand help; and __fish_seen_subcommand_from rpfilter" -f -a "fix" -d 'Set loose mode (2) where the effective mode is strict (1), recording prior values'
complete -c lbctl -n "__fish_lbctl_using_subcommand help; and __fish_seen_subcommand_from rpfilter" -f -a "restore" -d 'Put back the rp_filter values `fix` changed'
complete -c lbctl -n "__fish_lbctl_using_subcommand help; and __fish_seen_subcommand_from lb" -f -a "service" -d 'Add, change or delete a virtual service (ipvsadm -A/-E/-D)'
complete -c lbctl -n "__fish_lbctl_using_subcommand help; and __fish_seen_subcommand_from lb" -f -a "backend" -d 'Add, change or delete a real server of a service (ipvsadm -a/-e/-d); DR by default'
complete -c lbctl -n "__fish_lbctl_using_subcommand help; and __fish_seen_subcommand_from lb" -f -a "drain" -d 'Drain a real server: weight 0, so it gets no new connections while established ones continue (turns on mh/sh fallback where the scheduler needs it)'
complete -c lbctl -n "__fish_lbctl_using_subcommand help; and __fish_seen_subcommand_from lb" -f -a "list" -d 'List services and real servers like `ipvsadm -Ln` (--stats/--rate for counters)'
complete -c lbctl -n "__fish_lbctl_using_subcommand help; and __fish_seen_subcommand_from lb" -f -a "save" -d 'Print the IPVS table as `ipvsadm -S -n` rules (for `lb restore` or `ipvsadm -R`)'
complete -c lbctl -n "__fish_lbctl_using_subcommand help; and __fish_seen_subcommand_from lb" -f -a "restore" -d 'Apply ipvsadm rules (`lb save` / `ipvsadm -S` output): all checked against the current table before the first change, undone on failure'
complete -c lbctl -n "__fish_lbctl_using_subcommand help; and __fish_seen_subcommand_from lb" -f -a "apply" -d 'Converge IPVS to an LB file (see profiles/lb-example.toml): only what differs is changed, undone on failure, verified'
complete -c lbctl -n "__fish_lbctl_using_subcommand help; and __fish_seen_subcommand_from lb" -f -a "run" -d 'Run the balancer daemon: own the VIPs, program the data path (IPVS, or nftables with Maglev where IPVS is missing), health-check backends and take failed ones out'
complete -c lbctl -n "__fish_lbctl_using_subcommand help; and __fish_seen_subcommand_from lb" -f -a "status" -d 'Show what `lb run` is doing: backends, state, last check, weight (exit 1 if a backend is not up, 2 if no daemon runs)'
complete -c lbctl -n "__fish_lbctl_using_subcommand help; and __fish_seen_subcommand_from lb" -f -a "maglev" -d 'Maglev table balance, and the disruption of removing or adding a backend, for a table size M (to pick M)'
complete -c lbctl -n "__fish_lbctl_using_subcommand help; and __fish_seen_subcommand_from firewall" -f -a "check" -d 'The verdict for one flow: the client\'s SYN to VIP:PORT, and the SYN-ACK back'
complete -c lbctl -n "__fish_lbctl_using_subcommand help; and __fish_seen_subcommand_from lab" -f -a "up" -d 'Build a lab: a switch, a client, a balancer (`lbctl lb run`) and K backends configured by lbctl, each serving a page that names it'
complete -c lbctl -n "__fish_lbctl_using_subcommand help; and __fish_seen_subcommand_from lab" -f -a "demo" -d 'The whole story in a few seconds: up, requests through the VIP, where they went and that replies bypassed the balancer, doctor on a backend, down. Ctrl-C cleans up too'
complete -c lbctl -n "__fish_lbctl_using_subcommand help; and __fish_seen_subcommand_from lab" -f -a "traffic" -d 'Send HTTP requests from the client to the VIP and show which backend answered and which way the replies went'
complete -c lbctl -n "__fish_lbctl_using_subcommand help; and __fish_seen_subcommand_from lab" -f -a "exec" -d 'Run a command inside a lab node\'s namespace (exit code passed through)'
complete -c lbctl -n "__fish_lbctl_using_subcommand help; and __fish_seen_subcommand_from lab" -f -a "status" -d 'Show labs: nodes, namespaces, addresses, processes, injected faults (exit 1 if something recorded is missing or dead)'
complete -c lbctl -n "__fish_lbctl_using_subcommand help; and __fish_seen_subcommand_from lab" -f -a "down" -d 'Remove a lab: stop its processes (by recorded PID), delete its namespaces'
complete -c lbctl -n "__fish_lbctl_using_subcommand help; and __fish_seen_subcommand_from lab" -f -a "break" -d 'Inject a classic DSR fault into a backend, then watch `lbctl doctor` find it'
complete -c lbctl -n "__fish_lbctl_using_subcommand help; and __fish_seen_subcommand_from lab" -f -a "serve" -d 'The lab\'s built-in HTTP server: answers `GET /` with its name (started by `lab up`)'
complete -c lbctl -n "__fish_lbctl_using_subcommand help; and __fish_seen_subcommand_from gen" -f -a "completions" -d 'Print shell completions'
complete -c lbctl -n "__fish_lbctl_using_subcommand help; and __fish_seen_subcommand_from gen" -f -a "man" -d 'Write man pages (lbctl.1, lbctl-vip.1, …) into DIR'
