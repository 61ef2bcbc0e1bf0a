// Applies the stored theme choice (localStorage "ctforge-theme": light or dark) to <html data-theme>
// before the first paint; loaded without defer in the page head. assets/app.js stores the choice.
try { var t = localStorage.getItem("ctforge-theme"); if (t === "light" || t === "dark") document.documentElement.setAttribute("data-theme", t); } catch (e) { /* storage blocked: follow prefers-color-scheme */ }
