"""The scheduler's Django app: jobs, runs, schedules, the API, the admin and the RedBeat sync."""
