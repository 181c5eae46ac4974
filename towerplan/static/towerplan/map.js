/* towerplan map helpers (MIT, part of towerplan): canvas site shapes, popups,
   site search, VN-2000 coordinate readout, collapsible panels. */
(function () {
  "use strict";
  var TP = (window.TP = {});

  // Circle markers drawn as squares, diamonds or triangles on the canvas renderer.
  L.TpMarker = L.CircleMarker.extend({
    options: { shape: "circle" },
    _updatePath: function () {
      if (this.options.shape === "circle" || !this._renderer._tpShape) {
        return L.CircleMarker.prototype._updatePath.call(this);
      }
      this._renderer._tpShape(this);
    }
  });
  L.Canvas.include({
    _tpShape: function (layer) {
      if (!this._drawing || layer._empty()) { return; }
      var p = layer._point, ctx = this._ctx, r = Math.max(layer._radius, 1), s = layer.options.shape;
      ctx.beginPath();
      if (s === "square") {
        ctx.rect(p.x - r, p.y - r, 2 * r, 2 * r);
      } else if (s === "diamond") {
        var q = r * 1.35;
        ctx.moveTo(p.x, p.y - q); ctx.lineTo(p.x + q, p.y); ctx.lineTo(p.x, p.y + q); ctx.lineTo(p.x - q, p.y);
        ctx.closePath();
      } else {
        var t = r * 1.45;
        ctx.moveTo(p.x, p.y - t); ctx.lineTo(p.x + t * 0.95, p.y + t * 0.7); ctx.lineTo(p.x - t * 0.95, p.y + t * 0.7);
        ctx.closePath();
      }
      this._fillStroke(ctx, layer);
    }
  });

  TP.bind = function (layer, d, v) {
    if (d.tip.length) {
      var t = d.tip.map(function (i) { return v[i]; }).filter(function (x) { return x; });
      if (t.length) { layer.bindTooltip(t.join(" \u00b7 ")); }
    }
    var h = '<table class="tp-popup">';
    for (var i = 0; i < d.fields.length; i++) {
      if (v[i] !== "" && v[i] !== null) { h += "<tr><th>" + d.fields[i] + "</th><td>" + v[i] + "</td></tr>"; }
    }
    layer.bindPopup(h + "</table>", { maxWidth: 380 });
    if (d.id >= 0) { layer.tpId = v[d.id]; }
  };

  // Find a site by its ID in every point layer, show its layer, zoom and open its popup.
  TP.search = function (id) {
    var tp = window.towerplan, want = String(id).trim().toUpperCase();
    if (!want) { return null; }
    for (var k in tp.layers) {
      var l = tp.layers[k][0], found = null;
      if (!l.eachLayer) { continue; }
      l.eachLayer(function (m) { if (!found && m.tpId && String(m.tpId).toUpperCase() === want) { found = m; } });
      if (found) {
        if (!tp.map.hasLayer(l)) { tp.map.addLayer(l); }
        tp.map.setView(found.getLatLng(), Math.max(tp.map.getZoom(), 15));
        found.openPopup();
        return k;
      }
    }
    return null;
  };

  // WGS 84 lat/lon (deg) -> VN-2000 TM-3 X (northing) / Y (easting) in metres.
  // P: ellipsoid a, f; Helmert VN-2000 -> WGS 84 (tx, ty, tz m; rx, ry, rz rad; ds unitless;
  // frame: coordinate-frame convention) applied in reverse; TM cm (deg), k0, fe, fn.
  TP.vn2000 = function (lat, lon, P) {
    var a = P.a, f = P.f, e2 = f * (2 - f), d = Math.PI / 180;
    var phi = lat * d, lam = lon * d, sp = Math.sin(phi), N = a / Math.sqrt(1 - e2 * sp * sp);
    var X = N * Math.cos(phi) * Math.cos(lam), Y = N * Math.cos(phi) * Math.sin(lam), Z = N * (1 - e2) * sp;
    var s = P.frame ? 1 : -1, rx = -P.rx * s, ry = -P.ry * s, rz = -P.rz * s, m = 1 - P.ds;
    var X2 = -P.tx + m * (X + rz * Y - ry * Z);
    var Y2 = -P.ty + m * (-rz * X + Y + rx * Z);
    var Z2 = -P.tz + m * (ry * X - rx * Y + Z);
    var p = Math.hypot(X2, Y2), lam2 = Math.atan2(Y2, X2), phi2 = Math.atan2(Z2, p * (1 - e2));
    for (var i = 0; i < 6; i++) {
      var s2 = Math.sin(phi2), N2 = a / Math.sqrt(1 - e2 * s2 * s2), h = p / Math.cos(phi2) - N2;
      phi2 = Math.atan2(Z2, p * (1 - e2 * N2 / (N2 + h)));
    }
    var n = f / (2 - f), n2 = n * n, n3 = n2 * n, n4 = n3 * n, n5 = n4 * n, n6 = n5 * n;
    var A = a / (1 + n) * (1 + n2 / 4 + n4 / 64 + n6 / 256);
    var al = [0,
      n / 2 - 2 * n2 / 3 + 5 * n3 / 16 + 41 * n4 / 180 - 127 * n5 / 288 + 7891 * n6 / 37800,
      13 * n2 / 48 - 3 * n3 / 5 + 557 * n4 / 1440 + 281 * n5 / 630 - 1983433 * n6 / 1935360,
      61 * n3 / 240 - 103 * n4 / 140 + 15061 * n5 / 26880 + 167603 * n6 / 181440,
      49561 * n4 / 161280 - 179 * n5 / 168 + 6601661 * n6 / 7257600,
      34729 * n5 / 80640 - 3418889 * n6 / 1995840,
      212378941 * n6 / 319334400];
    var e = Math.sqrt(e2), sf = Math.sin(phi2), dl = lam2 - P.cm * d;
    var t = Math.sinh(Math.atanh(sf) - e * Math.atanh(e * sf));
    var xi = Math.atan2(t, Math.cos(dl)), eta = Math.atanh(Math.sin(dl) / Math.sqrt(1 + t * t));
    var xs = xi, es = eta;
    for (var j = 1; j <= 6; j++) {
      xs += al[j] * Math.sin(2 * j * xi) * Math.cosh(2 * j * eta);
      es += al[j] * Math.cos(2 * j * xi) * Math.sinh(2 * j * eta);
    }
    return { X: P.fn + P.k0 * A * xs, Y: P.fe + P.k0 * A * es };
  };

  TP.fmt = function (v) { return v.toFixed(2); };

  TP.readout = function (map, P, el, tpl) {
    map.on("mousemove", function (ev) {
      var r = TP.vn2000(ev.latlng.lat, ev.latlng.lng, P);
      el.textContent = tpl.replace("{X}", TP.fmt(r.X)).replace("{Y}", TP.fmt(r.Y))
        .replace("{lat}", ev.latlng.lat.toFixed(6)).replace("{lon}", ev.latlng.lng.toFixed(6));
    });
  };

  // Panels fold on screens smaller than 1600 x 900 so that they do not cover the study area.
  TP.fold = function (root) {
    var small = window.innerWidth < 1600 || window.innerHeight < 900;
    root.querySelectorAll("details.tp-fold-small").forEach(function (el) { el.open = !small; });
  };
})();
