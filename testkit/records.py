"""A valid absenteeism raw record the tests build on (every field inside its schema range)."""

VALID_ROW = {
    "id": 11, "reason_for_absence": 26, "month_of_absence": 7, "day_of_the_week": 3, "seasons": 1,
    "transportation_expense": 289, "distance_from_residence_to_work": 36, "service_time": 13, "age": 33,
    "work_load_average_per_day": 239.554, "hit_target": 97, "disciplinary_failure": 0, "education": 1, "son": 2,
    "social_drinker": 1, "social_smoker": 0, "pet": 1, "weight": 90.0, "height": 172.0, "body_mass_index": 30.0,
}
