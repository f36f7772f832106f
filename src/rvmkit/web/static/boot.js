// rvmkit live matting: the one classic script. It runs where the module script (app.js) cannot: a page
// opened from file:// gets no module, no model and no WASM threads, so say here what to do instead.
'use strict';
(function () {
  if (location.protocol !== 'file:') return;
  document.addEventListener('DOMContentLoaded', function () {
    var box = document.getElementById('message');
    box.textContent = 'This page was opened from a file (file://), where the browser blocks its script, ' +
      'the model and WASM threads. Serve the folder over http instead: `rvmkit export-web DIR --serve` ' +
      '(or `rvmkit serve`, which hosts it at /live), then open the address it prints.';
    box.className = 'error';
    box.hidden = false;
    document.body.dataset.state = 'error';
  });
})();
