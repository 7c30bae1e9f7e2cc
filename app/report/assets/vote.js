// Tapio's worker pages: the vote buttons POST to /api/v1/feedback with the bearer token pasted on the page
// (kept in this tab's sessionStorage). The API's own message says what went wrong (no token set, a wrong one...).
(function () {
  "use strict";
  var input = document.getElementById("tapio-token");
  if (input) {
    input.value = sessionStorage.getItem("tapio-token") || "";
    input.addEventListener("change", function () { sessionStorage.setItem("tapio-token", input.value); });
  }
  document.querySelectorAll(".vote").forEach(function (panel) {
    var status = panel.querySelector(".vote-status");
    panel.querySelectorAll("button[data-accurate]").forEach(function (button) {
      button.addEventListener("click", function () {
        var token = input ? input.value : "";
        status.className = "vote-status";
        if (!token) {
          status.className = "vote-status failed";
          status.textContent = "paste the worker's API token above first (api.token, or TAPIO_API_TOKEN)";
          return;
        }
        status.textContent = "sending...";
        fetch("/api/v1/feedback", {
          method: "POST",
          headers: { "Content-Type": "application/json", "Authorization": "Bearer " + token },
          body: JSON.stringify({ prediction_id: panel.getAttribute("data-prediction"),
                                 accurate: button.getAttribute("data-accurate") === "true",
                                 comment: panel.querySelector(".comment").value })
        }).then(function (response) {
          return response.json().then(function (body) {
            if (response.status === 201) {
              status.textContent = "recorded: " + (body.accurate ? "accurate" : "not accurate") + " (" + body.id + ")";
            } else {
              status.className = "vote-status failed";
              status.textContent = "refused (" + response.status + "): " + body.error;
            }
          });
        }).catch(function (error) {
          status.className = "vote-status failed";
          status.textContent = "the worker did not answer: " + error;
        });
      });
    });
  });
})();
