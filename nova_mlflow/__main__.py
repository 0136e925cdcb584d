from nova_mlflow.cli import main

if __name__ == "__main__":
    main()
