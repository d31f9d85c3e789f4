/**
 * The dashboard's HTML: a shell with no inline script or style (CSP `default-src 'self'`); the
 * script builds the page. Static text only: nothing user-controlled is ever interpolated here.
 */
export const pageHtml = () => `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>API keys — zpk</title>
<link rel="stylesheet" href="/dashboard/app.css">
<script defer src="/dashboard/app.js"></script>
</head>
<body>
<div id="app"><main class="loading" aria-busy="true"><p>Loading…</p></main></div>
<noscript><p>The dashboard needs JavaScript. The same actions are available over the REST API (/v1).</p></noscript>
</body>
</html>
`;

export const portalRefusedHtml = () => `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Link expired — zpk</title>
<link rel="stylesheet" href="/dashboard/app.css">
</head>
<body>
<main class="narrow">
<h1>This link no longer works</h1>
<p>Sign-in links work once, for a few minutes. Go back to the application that sent you here and open the dashboard again, or <a href="/dashboard/">sign in with an API key</a>.</p>
</main>
</body>
</html>
`;
