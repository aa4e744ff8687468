from locust import HttpUser, task


class Visitor(HttpUser):
    @task
    def home(self):
        self.client.get("/")
