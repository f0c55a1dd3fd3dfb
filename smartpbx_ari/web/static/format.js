// Pure helpers of the console (no DOM, no server): times in the browser's own zone,
// durations as m:ss, axis labels. Loaded before console.js and charts.js.
"use strict";

const pad2 = (n) => String(n).padStart(2, "0");

// "2026-11-28T07:31:06.509893+00:00" -> "2026-11-28 16:31:06" in the browser's time zone
function localTime(iso) {
  if (!iso) return "";
  const t = new Date(iso);
  if (Number.isNaN(t.getTime())) return "";
  return `${t.getFullYear()}-${pad2(t.getMonth() + 1)}-${pad2(t.getDate())} ` +
    `${pad2(t.getHours())}:${pad2(t.getMinutes())}:${pad2(t.getSeconds())}`;
}

// 125.4 -> "2:05"; 3725 -> "1:02:05"; none (a live call) -> ""
function clock(seconds) {
  if (seconds == null || !Number.isFinite(seconds) || seconds < 0) return "";
  const whole = Math.round(seconds);
  const h = Math.floor(whole / 3600), m = Math.floor((whole % 3600) / 60), s = whole % 60;
  return h ? `${h}:${pad2(m)}:${pad2(s)}` : `${m}:${pad2(s)}`;
}

// A bucket's start on a chart's axis: "14:00" for buckets under a day, else "11-28"
function axisTime(iso, bucketS) {
  const t = new Date(iso);
  return bucketS >= 86400 ? `${pad2(t.getMonth() + 1)}-${pad2(t.getDate())}`
    : `${pad2(t.getHours())}:${pad2(t.getMinutes())}`;
}

// "1–25 of 30" for a page at `offset` of `count` rows out of `total`
function pageLabel(offset, count, total) {
  return total ? `${offset + 1}–${offset + count} of ${total}` : "no calls";
}

// The top of a chart's y axis: a round number at or above `value` (1, 2, 5 × 10^n)
function niceTop(value) {
  if (!(value > 0)) return 1;
  const step = 10 ** Math.floor(Math.log10(value));
  return [1, 2, 5, 10].map((k) => k * step).find((top) => top >= value);
}
