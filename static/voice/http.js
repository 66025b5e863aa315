// Form posts and JSON reads against the page's own views, with Django's CSRF token.

const csrfToken = document.querySelector("input[name=csrfmiddlewaretoken]")?.value ?? "";

async function json(response) {
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    // A form's field errors, or a refusal's plain sentence ({code, message}).
    const detail = body.errors ? Object.values(body.errors).flat().join(" ") : body.message || response.statusText;
    throw new Error(detail || `Request failed (${response.status}).`);
  }
  return body;
}

export async function post(url, fields) {
  const response = await fetch(url, {
    method: "POST",
    headers: { "X-CSRFToken": csrfToken },
    body: new URLSearchParams(fields),
    credentials: "same-origin",
  });
  return json(response);
}

export async function getJson(url, params = {}) {
  const query = new URLSearchParams(params).toString();
  const response = await fetch(query ? `${url}?${query}` : url, { credentials: "same-origin" });
  return json(response);
}
