# An httpd image whose mod_wsgi is a PyPI release instead of the one Debian
# ships: the release's builder image (containers/Dockerfile, --target
# builder) plus mod_wsgi MOD_WSGI, compiled by pip against that release's
# apxs and Python. Debian's mods-available/wsgi.load then points at the
# PyPI build, so `a2enmod wsgi` (and our package's `a2enmod
# wsgi_telemetry`) loads it. Debian's own libapache2-mod-wsgi-py3 stays
# installed, unused, so that our module's package (which depends on it)
# installs as it would anywhere else.
#
# scripts/containers/build-images.sh builds it per (release, version) of
# its PyPI table: --build-arg BUILDER=mwt-builder:<release>-<hash>
# --build-arg MOD_WSGI=<version>, in a build context holding this file and
# build-host-ca.crt, the build machine's CA bundle (empty if it has none):
# pip trusts it instead of its own for the download only. Building needs the
# network (PyPI).
ARG BUILDER
FROM ${BUILDER}
ARG MOD_WSGI
COPY build-host-ca.crt /tmp/build-host-ca.crt
RUN test -n "$MOD_WSGI" \
 && apt-get update \
 && apt-get install -y --no-install-recommends python3-dev python3-venv \
 && rm -rf /var/lib/apt/lists/* \
 && python3 -m venv /opt/mod_wsgi \
 && if [ -s /tmp/build-host-ca.crt ]; then export PIP_CERT=/tmp/build-host-ca.crt; fi \
 && /opt/mod_wsgi/bin/pip install --quiet --no-cache-dir \
        --disable-pip-version-check --no-binary mod_wsgi "mod_wsgi==$MOD_WSGI" \
 && rm /tmp/build-host-ca.crt \
 && so="$(/opt/mod_wsgi/bin/mod_wsgi-express module-config | sed -n 's/^LoadModule wsgi_module "\(.*\)"$/\1/p')" \
 && test -f "$so" \
 && echo "LoadModule wsgi_module $so" >/etc/apache2/mods-available/wsgi.load
