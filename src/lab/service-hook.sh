# mmdebstrap extract hook for the lab's single-program images (consul,
# cadvisor, registry); $1 is the new root, unpacked but not installed.
set -eu
root=$1

# busybox gives the image a shell and the usual tools.
for applet in $(chroot "$root" /bin/busybox --list); do
    if [ ! -e "$root/bin/$applet" ] && [ ! -e "$root/usr/bin/$applet" ] &&
        [ ! -e "$root/sbin/$applet" ] && [ ! -e "$root/usr/sbin/$applet" ]; then
        ln -s busybox "$root/bin/$applet"
    fi
done
mkdir -p "$root"/tmp "$root"/var/tmp "$root"/root
chmod 1777 "$root"/tmp "$root"/var/tmp
rm -rf "$root"/usr/share/doc "$root"/usr/share/man "$root"/usr/share/locale \
    "$root"/usr/share/info
