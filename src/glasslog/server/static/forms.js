/* Server-rendered forms: move focus to the error summary when the server found problems. */
document.addEventListener("DOMContentLoaded", () => {
  const summary = document.getElementById("error-summary");
  if (summary) summary.focus();
});
